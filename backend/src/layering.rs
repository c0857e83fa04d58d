//! Checks that module dependencies point one way (edges → services → core → db), by reading
//! the sources: a `use crate::…` that climbs back up fails here, not in a later review.

use std::fs;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// Files in `folders` (relative to src/) that mention `crate::<module>` for any of
/// `forbidden`.
fn offenders(folders: &[&str], forbidden: &[&str]) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for folder in folders {
        let root = src.join(folder);
        let files = if root.is_dir() {
            sources(&root)
        } else {
            vec![root.with_extension("rs")]
        };
        for file in files {
            let text = fs::read_to_string(&file).unwrap();
            for module in forbidden {
                let needle = format!("crate::{module}");
                if text.lines().any(|l| {
                    l.contains(&needle)
                        && !l.trim_start().starts_with("//")
                        && l[l.find(&needle).unwrap() + needle.len()..]
                            .starts_with([':', ';', ',', ' '])
                }) {
                    found.push(format!("{} uses {needle}", file.display()));
                }
            }
        }
    }
    found
}

#[test]
fn only_main_and_lib_know_startup() {
    let all = [
        "actors", "api", "cluster", "db", "services", "state", "world", "ws", "error", "seed",
    ];
    assert_eq!(offenders(&all, &["startup"]), Vec::<String>::new());
}

#[test]
fn the_core_never_imports_services_or_edges() {
    let up = ["api", "ws", "startup", "state", "services"];
    assert_eq!(offenders(&["world", "actors"], &up), Vec::<String>::new());
}

#[test]
fn the_core_never_imports_the_cluster() {
    assert_eq!(
        offenders(&["world", "actors", "db"], &["cluster"]),
        Vec::<String>::new()
    );
}

#[test]
fn the_cluster_never_imports_services_or_edges() {
    let up = ["api", "ws", "startup", "state", "services"];
    assert_eq!(offenders(&["cluster"], &up), Vec::<String>::new());
}

#[test]
fn services_never_import_the_edges() {
    let up = ["api", "ws", "startup", "state"];
    assert_eq!(offenders(&["services"], &up), Vec::<String>::new());
}

#[test]
fn the_database_layer_imports_nothing_above_it() {
    let up = [
        "api", "ws", "startup", "state", "services", "world", "actors", "error",
    ];
    assert_eq!(offenders(&["db"], &up), Vec::<String>::new());
}

#[test]
fn the_websocket_edge_does_not_reach_into_the_http_handlers() {
    assert_eq!(offenders(&["ws"], &["api"]), Vec::<String>::new());
}
