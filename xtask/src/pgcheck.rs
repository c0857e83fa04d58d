//! Is the PostgreSQL server for the tests there? A TCP connect with a short timeout answers
//! quickly without a driver; `psql`, when installed, also proves we can log in.

use crate::proc;
use anyhow::{bail, Context as _, Result};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::time::Duration;

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The server the tests may create databases on: LIVEPET_TEST_POSTGRES_URL, else DEFAULT_URL.
pub fn test_url() -> String {
    std::env::var("LIVEPET_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_owned())
}

/// `url` naming database `db` instead of its own (user, host, port and query kept).
pub fn with_database(url: &str, db: &str) -> Result<String> {
    let scheme_end = url
        .find("://")
        .map(|i| i + 3)
        .filter(|_| url.starts_with("postgres://") || url.starts_with("postgresql://"))
        .with_context(|| format!("`{url}` is not a postgres:// URL"))?;
    let (scheme, rest) = url.split_at(scheme_end);
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(authority_end);
    let query = path_and_query
        .find('?')
        .map_or("", |q| &path_and_query[q..]);
    Ok(format!("{scheme}{authority}/{db}{query}"))
}

/// The database a `postgres://…/DB?…` URL names, if any.
pub fn database_name(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let path = &rest[rest.find('/')? + 1..];
    let name = path.split(['?', '/']).next().unwrap_or_default();
    (!name.is_empty()).then(|| name.to_owned())
}

/// `Ok(())` if a server answers at `url` (and accepts a login, when psql can tell).
pub fn check_reachable(url: &str) -> Result<()> {
    let (host, port) = host_port(url)?;
    let addrs: Vec<_> = (host.as_str(), port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .collect();
    let mut last_err = None;
    let connected = addrs.iter().any(|addr| {
        TcpStream::connect_timeout(addr, CONNECT_TIMEOUT)
            .map_err(|e| last_err = Some(e))
            .is_ok()
    });
    if !connected {
        match last_err {
            Some(e) => bail!("nothing accepts connections at {host}:{port}: {e}"),
            None => bail!("{host} resolves to no address"),
        }
    }
    psql_select_1(url)
}

/// Runs `select 1` through psql if it is installed; a missing psql is not an error.
fn psql_select_1(url: &str) -> Result<()> {
    let mut cmd = Command::new("psql");
    // -w: never prompt for a password (there is no one to answer); -X: ignore ~/.psqlrc.
    cmd.args(["-X", "-w", "-q", "-t", "-c", "select 1"])
        .arg(url)
        .env("PGCONNECT_TIMEOUT", "2")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    match cmd.output() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => bail!("could not run psql: {e}"),
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => bail!(
            "the server answers but `{}` failed: {}",
            proc::display(&cmd),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

/// Host and port of a `postgres://user:pass@host:port/db?…` URL (port 5432 when absent).
pub fn host_port(url: &str) -> Result<(String, u16)> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .with_context(|| format!("`{url}` is not a postgres:// URL"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    // The password may itself contain '@' only percent-encoded, so the last '@' ends it.
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .with_context(|| format!("unclosed '[' in `{url}`"))?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    let host = if host.is_empty() { "localhost" } else { host };
    let port = match port {
        Some(p) => p
            .parse()
            .with_context(|| format!("bad port `{p}` in `{url}`"))?,
        None => 5432,
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(url: &str) -> (String, u16) {
        host_port(url).unwrap_or_else(|e| panic!("{url}: {e:#}"))
    }

    #[test]
    fn parses_the_usual_url_shapes() {
        assert_eq!(hp(DEFAULT_URL), ("127.0.0.1".into(), 5432));
        assert_eq!(
            hp("postgres://u:p@db.example:6543/x"),
            ("db.example".into(), 6543)
        );
        assert_eq!(hp("postgresql://db/x?sslmode=disable"), ("db".into(), 5432));
        assert_eq!(hp("postgres://u@[::1]:5433/x"), ("::1".into(), 5433));
        assert_eq!(hp("postgres:///x"), ("localhost".into(), 5432));
        assert!(host_port("mysql://x").is_err());
        assert!(host_port("postgres://h:notaport/x").is_err());
    }

    #[test]
    fn names_the_database_of_a_url() {
        assert_eq!(database_name(DEFAULT_URL).as_deref(), Some("postgres"));
        assert_eq!(
            database_name("postgres://u:p@h:1/livepet?sslmode=disable").as_deref(),
            Some("livepet")
        );
        assert_eq!(database_name("postgres://h"), None);
        assert_eq!(database_name("postgres://h/?x=1"), None);
    }

    #[test]
    fn swaps_the_database_of_a_url() {
        let swap = |url: &str| with_database(url, "t1").unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(swap(DEFAULT_URL), "postgres://postgres@127.0.0.1:5432/t1");
        assert_eq!(
            swap("postgres://u:p@h:1/x?sslmode=disable"),
            "postgres://u:p@h:1/t1?sslmode=disable"
        );
        assert_eq!(swap("postgresql://h"), "postgresql://h/t1");
        assert_eq!(swap("postgres://h?a=b"), "postgres://h/t1?a=b");
        assert!(with_database("mysql://h/x", "t1").is_err());
    }
}
