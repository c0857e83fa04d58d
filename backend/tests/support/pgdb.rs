//! A PostgreSQL database made for one test on the test server (`LIVEPET_TEST_POSTGRES_URL`,
//! default `postgres://postgres@127.0.0.1:5432/postgres`), dropped with its connections when
//! the guard goes, also when the test panics. Each test binary decides what an unavailable
//! server means (a loud skip, or a failure under `CI`).

use diesel::pg::PgConnection;
use diesel::prelude::*;

pub struct PgDb {
    admin: String,
    name: String,
    pub url: String,
}

impl PgDb {
    /// A fresh database named `{prefix}_{pid}_{random}`, or why there is none
    /// (`LIVEPET_TEST_POSTGRES=off`, or the server cannot be reached).
    pub fn create(prefix: &str) -> Result<PgDb, String> {
        if std::env::var("LIVEPET_TEST_POSTGRES").as_deref() == Ok("off") {
            return Err("PostgreSQL: LIVEPET_TEST_POSTGRES=off".into());
        }
        let admin = std::env::var("LIVEPET_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut conn = PgConnection::establish(&admin)
            .map_err(|e| format!("PostgreSQL: cannot connect to {admin}: {e}"))?;
        let name = format!("{prefix}_{}_{}", std::process::id(), rand::random::<u32>());
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .map_err(|e| format!("PostgreSQL: cannot create database {name}: {e}"))?;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Ok(PgDb { admin, name, url })
    }

    /// A connection to this database.
    #[allow(dead_code)] // not every test binary reads the database itself
    pub fn connect(&self) -> PgConnection {
        PgConnection::establish(&self.url)
            .unwrap_or_else(|e| panic!("cannot connect to the test database {}: {e}", self.url))
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Ok(mut c) = PgConnection::establish(&self.admin) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut c);
        }
    }
}
