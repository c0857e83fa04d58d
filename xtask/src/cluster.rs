//! What `cargo xtask run --nodes N` and the `cluster` bench share about several nodes: a
//! nats-server of our own on a free port (or one that already answers), and what a node's
//! `GET /readyz` says (see /work/cluster-spec.md and DESIGN.md, "Several nodes").

use crate::bench_sys::{self, Proc};
use anyhow::{Context as _, Result};
use serde_json::Value;
use std::io::Read as _;
use std::net::{TcpStream, ToSocketAddrs as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Where a NATS server usually runs on a developer's machine (and on the project's).
pub const NATS_DEFAULT_ADDR: &str = "127.0.0.1:4222";
/// Debian's `nats-server` package installs it here, outside most users' PATH.
const NATS_SERVER_DEBIAN: &str = "/usr/sbin/nats-server";
/// Pets fall into this many shards (`id % 1024`); every shard has one owner.
pub const SHARDS: u64 = 1024;

/// The `nats-server` binary: Debian's path, else whatever PATH finds.
pub fn nats_server_binary() -> Option<PathBuf> {
    let debian = Path::new(NATS_SERVER_DEBIAN);
    if debian.is_file() {
        return Some(debian.to_path_buf());
    }
    bench_sys::output(Command::new("sh").args(["-c", "command -v nats-server"]))
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// What to tell someone who has no nats-server.
pub const NATS_INSTALL_HINT: &str =
    "install it with `sudo apt-get install -y nats-server`, or point LIVEPET_NATS_URL at one";

/// Whether a NATS server answers at `addr` (`host:port`). A bare TCP connect would also
/// accept some other program on the port; NATS greets every client with `INFO {…}` at once,
/// so the first four bytes tell.
pub fn nats_answers(addr: &str) -> bool {
    let Ok(addrs) = addr.to_socket_addrs() else {
        return false;
    };
    addrs.into_iter().any(|a| {
        let Ok(mut s) = TcpStream::connect_timeout(&a, Duration::from_millis(500)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut greeting = [0u8; 4];
        s.read_exact(&mut greeting).is_ok() && &greeting == b"INFO"
    })
}

/// A nats-server started for one run, listening on a free port of the loopback.
pub struct Nats {
    pub proc: Proc,
    pub url: String,
}

/// Starts `nats-server -a 127.0.0.1 -p -1` (port -1: it picks a free one) and reads the
/// port from its log line `Listening for client connections on 127.0.0.1:PORT`.
pub fn start_nats(binary: &Path, log: &Path) -> Result<Nats> {
    let mut cmd = Command::new(binary);
    cmd.args(["-a", "127.0.0.1", "-p", "-1"]);
    let mut proc = Proc::spawn("nats-server", &cmd, log)?;
    let addr = proc
        .wait_for(Duration::from_secs(30), listening_addr)
        .context("starting nats-server")?;
    Ok(Nats {
        proc,
        url: format!("nats://{addr}"),
    })
}

/// `127.0.0.1:43201` from nats-server's `… [INF] Listening for client connections on
/// 127.0.0.1:43201`.
pub fn listening_addr(line: &str) -> Option<String> {
    let (_, addr) = line.split_once("Listening for client connections on ")?;
    let addr = addr.trim();
    (!addr.is_empty()).then(|| addr.to_owned())
}

/// `host:port` of a `nats://host:port` URL (for the TCP check).
pub fn nats_addr(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    if hostport.is_empty() {
        return None;
    }
    Some(if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:4222")
    })
}

/// One answer of `GET /readyz`: 200 `{"ready":true,"node":"n1","nodes":3,"owned_shards":341}`
/// once the node holds and has loaded every shard the placement gives it, else 503 with
/// the same fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readiness {
    pub status: u16,
    pub node: String,
    pub nodes: u64,
    pub owned_shards: u64,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.status == 200
    }

    /// `503, sees 2 node(s), owns 300 shard(s)`: for progress lines.
    pub fn describe(&self) -> String {
        format!(
            "{}{}, sees {} node(s), owns {} shard(s)",
            self.status,
            if self.ready() { " ready" } else { "" },
            self.nodes,
            self.owned_shards
        )
    }
}

/// Asks `addr` (`host:port`) for `/readyz`; an error when nothing answers.
pub fn readyz(addr: &str) -> Result<Readiness> {
    let (status, body) =
        bench_sys::http_within("GET", addr, "/readyz", None, Duration::from_secs(5))?;
    Ok(parse_readiness(status, &body))
}

fn parse_readiness(status: u16, body: &str) -> Readiness {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    Readiness {
        status,
        node: v["node"].as_str().unwrap_or_default().to_owned(),
        nodes: v["nodes"].as_u64().unwrap_or(0),
        owned_shards: v["owned_shards"].as_u64().unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_port_nats_server_picked() {
        let line = "[2594] 2026/12/06 18:25:38.972494 [INF] Listening for client connections on 127.0.0.1:43201";
        assert_eq!(listening_addr(line).as_deref(), Some("127.0.0.1:43201"));
        assert_eq!(listening_addr("[INF] Server is ready"), None);
    }

    #[test]
    fn finds_the_address_of_a_nats_url() {
        assert_eq!(
            nats_addr("nats://127.0.0.1:4222").as_deref(),
            Some("127.0.0.1:4222")
        );
        assert_eq!(nats_addr("nats://nats").as_deref(), Some("nats:4222"));
        assert_eq!(nats_addr("nats://u:p@h:1").as_deref(), Some("h:1"));
        assert_eq!(nats_addr("nats://"), None);
    }

    #[test]
    fn reads_readyz() {
        let r = parse_readiness(
            200,
            r#"{"ready":true,"node":"n1","nodes":3,"owned_shards":341}"#,
        );
        assert!(r.ready());
        assert_eq!((r.node.as_str(), r.nodes, r.owned_shards), ("n1", 3, 341));
        let r = parse_readiness(503, "not json");
        assert!(!r.ready());
        assert_eq!(r.owned_shards, 0);
    }
}
