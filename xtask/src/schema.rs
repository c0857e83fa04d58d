//! `cargo xtask schema`: backend/src/db/schema.rs is what `diesel print-schema` prints for the
//! migrations. Without flags it rewrites the file; `--check` (a step of `cargo xtask test`)
//! fails with a unified diff when the file or the two migration folders disagree.
//!
//! Both folders run on throwaway databases: a SQLite file in a temporary folder and a
//! uniquely named database on the PostgreSQL server of the tests (dropped afterwards, also
//! on failure). The file is SQLite's print-schema output byte for byte, with diesel.toml's
//! `sqlite_integer_primary_key_is_bigint` so `INTEGER PRIMARY KEY` ids print as `BigInt`.
//! PostgreSQL's output must be the same once its spellings `Int2`/`Int4`/`Int8`/`Float4`/
//! `Float8` are written as `SmallInt`/`Integer`/`BigInt`/`Float`/`Double`: those are plain
//! `pub type` aliases in `diesel::sql_types`, so both name the very same Rust types. SQLite's
//! output is the one written because its names are the backend-neutral ones the
//! MultiConnection code is written against; every other difference (a table or column only
//! one side has, nullability, a type, a key, a foreign key) fails the check.

use crate::proc::{self, step};
use crate::{pgcheck, test};
use anyhow::{bail, Context as _, Result};
use clap::Args;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The diesel_cli whose print-schema output schema.rs is; pinned because the output's exact
/// shape belongs to the CLI version (the `diesel` crate in Cargo.lock was 2.3.14 too).
pub const DIESEL_CLI_VERSION: &str = "2.3.14";
/// The generated file, relative to the workspace root.
const SCHEMA_FILE: &str = "backend/src/db/schema.rs";
const SQLITE_MIGRATIONS: &str = "migrations/sqlite";
const POSTGRES_MIGRATIONS: &str = "migrations/postgres";
/// PostgreSQL's print-schema spellings and the `diesel::sql_types` types they alias.
const PG_ALIASES: [(&str, &str); 5] = [
    ("Int2", "SmallInt"),
    ("Int4", "Integer"),
    ("Int8", "BigInt"),
    ("Float4", "Float"),
    ("Float8", "Double"),
];
/// Lines of context around each change in the diffs we print.
const CONTEXT: usize = 3;

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Do not write: fail with a diff if schema.rs or the two migration folders disagree
    /// (what `cargo xtask test` runs).
    #[arg(long)]
    pub check: bool,
}

pub fn schema(args: SchemaArgs) -> Result<()> {
    if args.check {
        check()
    } else {
        write()
    }
}

/// The `cargo xtask test` step: schema.rs must be exactly what the migrations generate.
pub fn check() -> Result<()> {
    step("schema.rs matches the migrations (diesel print-schema on fresh databases)");
    let began = Instant::now();
    let generated = generate()?;
    let path = proc::root().join(SCHEMA_FILE);
    let current =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;

    let mut problems = Vec::new();
    if current != generated.sqlite {
        println!(
            "\n{SCHEMA_FILE} differs from what the migrations generate (- file, + generated):"
        );
        print!(
            "{}",
            unified_diff(
                &current,
                &generated.sqlite,
                &format!("{SCHEMA_FILE} (in the tree)"),
                &format!("{SCHEMA_FILE} (diesel print-schema, {SQLITE_MIGRATIONS})"),
            )
        );
        problems.push(format!(
            "{SCHEMA_FILE} is not what the migrations generate: run `cargo xtask schema` \
             to rewrite it, then review and commit it"
        ));
    }
    if let Some(pg) = &generated.postgres {
        if let Some(problem) = compare_backends(&generated.sqlite, pg) {
            problems.push(problem);
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; and "));
    }
    println!(
        "    {SCHEMA_FILE} matches {SQLITE_MIGRATIONS}{} ({:.1} s)",
        if generated.postgres.is_some() {
            format!(" and {POSTGRES_MIGRATIONS}")
        } else {
            format!(" ({POSTGRES_MIGRATIONS} NOT CHECKED: no PostgreSQL)")
        },
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `cargo xtask schema`: rewrites schema.rs from the migrations, after a new migration.
fn write() -> Result<()> {
    step(format!("generating {SCHEMA_FILE} from the migrations"));
    let began = Instant::now();
    let generated = generate()?;
    if let Some(pg) = &generated.postgres {
        if let Some(problem) = compare_backends(&generated.sqlite, pg) {
            bail!("{problem}; {SCHEMA_FILE} was left as it was");
        }
    }
    let path = proc::root().join(SCHEMA_FILE);
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current == generated.sqlite {
        println!("    {SCHEMA_FILE} was already up to date");
    } else {
        print!(
            "{}",
            unified_diff(
                &current,
                &generated.sqlite,
                &format!("{SCHEMA_FILE} (before)"),
                &format!("{SCHEMA_FILE} (after)"),
            )
        );
        std::fs::write(&path, &generated.sqlite)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("    wrote {SCHEMA_FILE}");
    }
    if generated.postgres.is_none() {
        println!("    !!! {POSTGRES_MIGRATIONS} was NOT compared (no PostgreSQL, see above)");
    }
    println!("    done in {:.1} s", began.elapsed().as_secs_f64());
    Ok(())
}

/// `None` when PostgreSQL's schema names the same Rust types as SQLite's, else a message
/// (after printing the diff).
fn compare_backends(sqlite: &str, postgres: &str) -> Option<String> {
    let postgres = spell_out_pg_aliases(postgres);
    if postgres == sqlite {
        return None;
    }
    println!(
        "\nThe two migration folders give different schemas \
         (- {SQLITE_MIGRATIONS}, + {POSTGRES_MIGRATIONS}, Int8 etc. written as BigInt etc.):"
    );
    print!(
        "{}",
        unified_diff(sqlite, &postgres, SQLITE_MIGRATIONS, POSTGRES_MIGRATIONS)
    );
    Some(format!(
        "{SQLITE_MIGRATIONS} and {POSTGRES_MIGRATIONS} disagree (diff above): every \
         migration needs its twin in the other folder declaring the same columns, types and \
         nullability; then run `cargo xtask schema`"
    ))
}

/// What `diesel print-schema` prints for each migration folder.
struct Generated {
    sqlite: String,
    /// `None` when PostgreSQL could not be reached outside CI (a warning was printed).
    postgres: Option<String>,
}

fn generate() -> Result<Generated> {
    let path = ensure_diesel_cli()?;
    let root = proc::root();
    let tmp = tempfile::Builder::new()
        .prefix("livepet-schema-")
        .tempdir()
        .context("creating a temporary folder")?;
    // Creating and migrating read this empty config rather than diesel.toml: with a
    // `print_schema.file` there, diesel would rewrite schema.rs itself and a check would
    // compare the file with its own fresh copy.
    let no_config = tmp.path().join("empty-diesel.toml");
    std::fs::write(&no_config, "").with_context(|| format!("writing {}", no_config.display()))?;
    let diesel = Diesel {
        path,
        repo_config: root.join("diesel.toml"),
        no_config,
    };

    let sqlite_url = tmp.path().join("schema.db").to_string_lossy().into_owned();
    diesel.setup(&sqlite_url, SQLITE_MIGRATIONS)?;
    let sqlite = diesel.print_schema(&sqlite_url)?;

    let base = pgcheck::test_url();
    let postgres = match pgcheck::check_reachable(&base) {
        Ok(()) => {
            let name = format!("livepet_schema_{}_{}", std::process::id(), nanos());
            let url = pgcheck::with_database(&base, &name)?;
            let db = PgDatabase {
                diesel: &diesel,
                url: url.clone(),
                dropped: false,
            };
            diesel.setup(&url, POSTGRES_MIGRATIONS)?;
            let printed = diesel.print_schema(&url)?;
            db.drop_now()?;
            Some(printed)
        }
        Err(e) if test::is_ci() => {
            return Err(e.context(format!(
                "PostgreSQL is required under CI to check {POSTGRES_MIGRATIONS} against \
                 {SCHEMA_FILE}, but {base} is not usable (set LIVEPET_TEST_POSTGRES_URL)"
            )))
        }
        Err(e) => {
            let line = "!".repeat(78);
            println!("{line}");
            println!("!!! PostgreSQL at {base} is not usable: {e:#}");
            println!("!!! {POSTGRES_MIGRATIONS} IS NOT CHECKED against {SCHEMA_FILE}.");
            println!("!!! Start a server or set LIVEPET_TEST_POSTGRES_URL (CI never skips it).");
            println!("{line}");
            None
        }
    };
    Ok(Generated { sqlite, postgres })
}

/// The diesel binary and the two configs it is run with.
struct Diesel {
    /// PATH with cargo's bin folder first, where `cargo install` puts diesel.
    path: OsString,
    repo_config: PathBuf,
    no_config: PathBuf,
}

impl Diesel {
    fn command(&self) -> Command {
        let mut cmd = proc::command("diesel");
        cmd.env("PATH", &self.path)
            .env_remove("DATABASE_URL")
            .env_remove("MIGRATION_DIRECTORY");
        cmd
    }

    /// Creates the database and runs every migration of `dir` on it.
    fn setup(&self, url: &str, dir: &str) -> Result<()> {
        let mut cmd = self.command();
        // --no-default-migration: otherwise diesel adds its own first migration to `dir`.
        cmd.args([
            "database",
            "setup",
            "--no-default-migration",
            "--migration-dir",
        ])
        .arg(dir)
        .arg("--database-url")
        .arg(url)
        .arg("--config-file")
        .arg(&self.no_config);
        proc::run(&mut cmd).with_context(|| format!("creating a database from {dir}"))
    }

    /// `diesel print-schema` with the settings of the repository's diesel.toml.
    fn print_schema(&self, url: &str) -> Result<String> {
        let mut cmd = self.command();
        cmd.arg("print-schema")
            .arg("--database-url")
            .arg(url)
            .arg("--config-file")
            .arg(&self.repo_config)
            .stdin(Stdio::null());
        println!("    $ {}", proc::display(&cmd));
        let out = cmd
            .output()
            .with_context(|| format!("could not run `{}`", proc::display(&cmd)))?;
        if !out.status.success() {
            bail!(
                "`{}` failed ({}): {}",
                proc::display(&cmd),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        String::from_utf8(out.stdout).context("diesel print-schema wrote invalid UTF-8")
    }
}

/// A PostgreSQL database that is dropped when this goes out of scope, success or not.
struct PgDatabase<'a> {
    diesel: &'a Diesel,
    url: String,
    dropped: bool,
}

impl PgDatabase<'_> {
    fn drop_now(mut self) -> Result<()> {
        self.dropped = true;
        self.drop_database()
    }

    fn drop_database(&self) -> Result<()> {
        let mut cmd = self.diesel.command();
        cmd.args(["database", "drop", "--database-url"])
            .arg(&self.url)
            .arg("--config-file")
            .arg(&self.diesel.no_config);
        proc::run(&mut cmd).context("dropping the temporary PostgreSQL database")
    }
}

impl Drop for PgDatabase<'_> {
    fn drop(&mut self) {
        if !self.dropped {
            if let Err(e) = self.drop_database() {
                eprintln!("xtask: warning: {e:#}");
            }
        }
    }
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Installs diesel_cli DIESEL_CLI_VERSION (PostgreSQL and bundled SQLite) unless it is
/// there; returns the PATH to run it with.
fn ensure_diesel_cli() -> Result<OsString> {
    let cargo_bin = proc::cargo_bin_dir();
    let path = proc::path_with(&cargo_bin.iter().cloned().collect::<Vec<_>>())?;
    let probe = || {
        let mut version = proc::command("diesel");
        version.arg("--version").env("PATH", &path);
        proc::probe(version)
    };
    let found = probe();
    if found.as_deref().is_some_and(diesel_cli_fits) {
        return Ok(path);
    }
    step(format!(
        "installing diesel_cli {DIESEL_CLI_VERSION} (about 6 min, once){}",
        found
            .map(|v| format!("; found `{}` instead", one_line(&v)))
            .unwrap_or_default()
    ));
    let began = Instant::now();
    proc::run(proc::cargo().args([
        "install",
        "diesel_cli",
        "--version",
        DIESEL_CLI_VERSION,
        "--locked",
        "--no-default-features",
        "--features",
        "postgres,sqlite-bundled",
    ]))
    .context(
        "installing diesel_cli (its PostgreSQL support links libpq: on Debian, \
         `apt-get install libpq-dev`)",
    )?;
    println!(
        "    diesel_cli installed in {:.0} s",
        began.elapsed().as_secs_f64()
    );
    match probe() {
        Some(v) if diesel_cli_fits(&v) => Ok(path),
        Some(v) => bail!(
            "after installing, `diesel --version` reports `{}`: another diesel earlier on \
             PATH? Expected version {DIESEL_CLI_VERSION} with postgres and sqlite",
            one_line(&v)
        ),
        None => bail!("diesel does not run after installing it"),
    }
}

/// `diesel --version` says `Version: 2.3.14` and `Supported Backends: postgres sqlite`.
fn diesel_cli_fits(version_output: &str) -> bool {
    let field = |name: &str| {
        version_output
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(str::trim)
    };
    let backends: Vec<&str> = field("Supported Backends:")
        .map(|b| b.split_whitespace().collect())
        .unwrap_or_default();
    field("Version:") == Some(DIESEL_CLI_VERSION)
        && backends.contains(&"postgres")
        && backends.contains(&"sqlite")
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Rewrites PostgreSQL's type spellings (PG_ALIASES) in the column lines of a print-schema
/// output (`    name -> Type,`), leaving everything else as it is.
fn spell_out_pg_aliases(schema: &str) -> String {
    let mut out = String::with_capacity(schema.len());
    for line in schema.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        match body.split_once(" -> ") {
            Some((column, ty))
                if body.starts_with(char::is_whitespace)
                    && body.ends_with(',')
                    && !column.trim().contains(char::is_whitespace) =>
            {
                out.push_str(column);
                out.push_str(" -> ");
                out.push_str(&replace_identifiers(ty));
                out.push_str(&line[body.len()..]);
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// `ty` with each identifier that PG_ALIASES names replaced by the type it aliases.
fn replace_identifiers(ty: &str) -> String {
    let mut out = String::with_capacity(ty.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let w = PG_ALIASES
            .iter()
            .find(|(alias, _)| alias == word)
            .map_or(word.as_str(), |(_, ty)| ty);
        out.push_str(w);
        word.clear();
    };
    for c in ty.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// A unified diff (`---`/`+++` headers, `@@` hunks with CONTEXT lines around changes) of
/// `old` and `new` by lines; empty when they are equal.
pub fn unified_diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    if old == new {
        return String::new();
    }
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(CONTEXT)
        .header(old_name, new_name)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_name_both_sides_and_show_the_change() {
        assert_eq!(unified_diff("a\nb\n", "a\nb\n", "x", "y"), "");
        let diff = unified_diff("1\n2\n3\n", "1\ntwo\n3\n", "old", "new");
        assert!(diff.starts_with("--- old\n+++ new\n@@ "), "{diff}");
        assert!(diff.contains("-2\n+two\n"), "{diff}");
    }

    #[test]
    fn pg_aliases_become_the_types_they_alias() {
        let pg = "diesel::table! {\n    pets (id) {\n        id -> Int8,\n        \
                  hunger -> Nullable<Int4>,\n        xs -> Array<Float8>,\n        \
                  Int8x -> Int8range,\n    }\n}\n\n\
                  diesel::joinable!(pets -> users (user_id));\n";
        let want = "diesel::table! {\n    pets (id) {\n        id -> BigInt,\n        \
                    hunger -> Nullable<Integer>,\n        xs -> Array<Double>,\n        \
                    Int8x -> Int8range,\n    }\n}\n\n\
                    diesel::joinable!(pets -> users (user_id));\n";
        assert_eq!(spell_out_pg_aliases(pg), want);
    }

    #[test]
    fn backends_agree_when_only_the_pg_spellings_differ() {
        let sqlite = "diesel::table! {\n    t (id) {\n        id -> BigInt,\n    }\n}\n";
        assert_eq!(
            compare_backends(sqlite, &sqlite.replace("BigInt", "Int8")),
            None
        );
        let nullable = sqlite.replace("BigInt", "Nullable<Int8>");
        assert!(compare_backends(sqlite, &nullable).is_some());
        assert!(compare_backends(sqlite, &sqlite.replace("BigInt", "Int4")).is_some());
    }

    #[test]
    fn reads_diesel_version_output() {
        let ok = format!(
            "diesel \n Version: {DIESEL_CLI_VERSION}\n Supported Backends: postgres sqlite\n"
        );
        assert!(diesel_cli_fits(&ok));
        assert!(!diesel_cli_fits(&ok.replace(" sqlite", "")));
        assert!(!diesel_cli_fits(
            "diesel \n Version: 2.2.0\n Supported Backends: postgres sqlite\n"
        ));
        assert!(!diesel_cli_fits("something else"));
    }

    #[test]
    fn the_generated_file_and_migrations_are_where_we_look() {
        for dir in [SQLITE_MIGRATIONS, POSTGRES_MIGRATIONS] {
            assert!(proc::root().join(dir).is_dir(), "{dir}");
        }
        let schema = std::fs::read_to_string(proc::root().join(SCHEMA_FILE));
        assert!(schema.is_ok_and(|s| s.contains("diesel::table!")));
    }
}
