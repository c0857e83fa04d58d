//! Storage never lies (issue 14): each fault that concerns what is stored, injected into a
//! real server — a full disk, deaths while the database is away, the database file deleted
//! or replaced, damaged rows, two actors for one pet id — and every time, what was stored
//! checked against what users were told.

use crate::client::{Client, Got, Ws, PASSWORD};
use crate::helpers::{
    metric, postgres_admin, report, skip_postgres, wait_for, Backend, TestApp, TestDb,
};
use crate::process::ServerProcess;
use crate::proxy::Proxy;
use actix::prelude::*;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use diesel::sqlite::SqliteConnection;
use livepet_server::actors::pet::{Get, PetFrame, Watch};
use livepet_server::db::{queries, DbConn};
use livepet_server::world::PetRecord;
use livepet_shared::wire::{ErrorCode, PetView, ServerMsg};
use livepet_shared::{PetId, PetState, Species, UserId};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// Helpers

/// A tmpfs of a few MiB mounted on a fresh folder, so a full disk can be made and unmade in
/// a moment (tests run as root, here and in CI); unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mib: u32) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "livepet-test"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs (needs root) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn filler(&self) -> PathBuf {
        self.path().join("filler")
    }

    /// Takes every free byte with a file of zeros.
    fn fill(&self) {
        let mut f = File::create(self.filler()).unwrap();
        for chunk in [1 << 20, 4096, 1] {
            let buf = vec![0u8; chunk];
            loop {
                match f.write_all(&buf) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                    Err(e) => panic!("filling the disk: {e}"),
                }
            }
        }
        let err = f.write_all(&[0]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
    }

    fn free(&self) {
        std::fs::remove_file(self.filler()).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazy: a server killed a moment ago may still be closing its files.
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

/// A connection of the test's own to an SQLite file, waiting on the server's locks.
fn sqlite(path: &Path) -> SqliteConnection {
    let mut c = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    c.batch_execute("PRAGMA busy_timeout = 10000;").unwrap();
    c
}

/// Moves everything in the WAL into the database file and empties the WAL, so the next
/// commit needs new disk space.
async fn checkpoint_truncate(path: &Path) {
    #[derive(QueryableByName)]
    struct Checkpoint {
        #[diesel(sql_type = Integer)]
        busy: i32,
        #[diesel(sql_type = Integer)]
        log: i32,
    }
    let mut c = sqlite(path);
    wait_for("a complete checkpoint", TIMEOUT, || {
        let r: Checkpoint = diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)")
            .get_result(&mut c)
            .unwrap();
        (r.busy == 0 && r.log == 0).then_some(())
    })
    .await;
}

/// Asserts a 503 `service_unavailable` in the API's JSON error shape.
async fn assert_unavailable(res: reqwest::Response) {
    let status = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(status, 503, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "service_unavailable", "{body}");
}

/// Opens a socket for `client`, past its greeting, watching `pets` (first frames read).
async fn watching(client: &Client, pets: &[PetId]) -> Ws {
    let mut ws = client.ws().await;
    ws.greeting().await;
    for id in pets {
        ws.send(json!({"type":"watch","pet_id":id})).await;
        ws.pet_frame(*id).await;
    }
    ws
}

/// Every pet frame the server sent before it answers a ping: a barrier that needs no sleep
/// (the pets' frames and the pong pass through the same session, in order).
async fn frames_until_pong(ws: &mut Ws) -> Vec<PetView> {
    ws.send(json!({"type":"ping"})).await;
    let mut seen = Vec::new();
    loop {
        match ws.recv().await {
            ServerMsg::Pet { pet } => seen.push(pet),
            ServerMsg::Pong => return seen,
            _ => {}
        }
    }
}

/// Waits until `server`'s metric `name` satisfies `ok`, reading `ws` meanwhile (into
/// `seen`), so the viewer never stops reading for long (it would be dropped).
async fn read_while_waiting(
    ws: &mut Ws,
    seen: &mut Vec<PetView>,
    server: &ServerProcess,
    name: &str,
    ok: impl Fn(f64) -> bool,
) -> f64 {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = metric(&server.metrics().await, name) {
            if ok(v) {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "metric {name} never got there; log:\n{}",
            server.log()
        );
        // Whatever arrives within the next 50 ms, then look at the metric again.
        let window = tokio::time::Instant::now() + Duration::from_millis(50);
        while let Ok(got) = tokio::time::timeout_at(window, ws.next()).await {
            match got {
                Got::Msg(ServerMsg::Pet { pet }) => seen.push(pet),
                Got::Msg(_) => {}
                Got::Closed(code) => panic!("the viewer's socket closed ({code:?})"),
            }
        }
    }
}

/// Logs `client` in as `email` (the test password).
async fn log_in(base: &str, email: &str) -> Client {
    let mut client = Client::new(base);
    let res = client
        .post(
            "/api/session",
            json!({"email": email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 200);
    client
}

/// Takes the database away from a running server and brings it back: SQLite held under an
/// exclusive lock by another connection, PostgreSQL cut off behind a TCP proxy.
enum Outage {
    Sqlite {
        path: PathBuf,
        url: String,
        locker: Option<SqliteConnection>,
    },
    Postgres {
        proxy: Proxy,
        url: String,
    },
}

impl Outage {
    fn new(db: &TestDb, backend: Backend) -> Outage {
        match backend {
            Backend::Sqlite => Outage::Sqlite {
                path: PathBuf::from(db.raw_url().trim_start_matches("sqlite://")),
                url: db.raw_url().to_string(),
                locker: None,
            },
            Backend::Postgres => {
                db.conn(); // migrated directly, so the server only ever sees the proxy
                let proxy = Proxy::start(db.postgres_addr());
                let url = db.url_through(proxy.port);
                Outage::Postgres { proxy, url }
            }
        }
    }

    /// The URL the server uses.
    fn url(&self) -> &str {
        match self {
            Outage::Sqlite { url, .. } | Outage::Postgres { url, .. } => url,
        }
    }

    fn begin(&mut self) {
        match self {
            Outage::Sqlite { path, locker, .. } => {
                let mut c = sqlite(path);
                c.batch_execute("BEGIN EXCLUSIVE").unwrap();
                *locker = Some(c);
            }
            Outage::Postgres { proxy, .. } => proxy.cut(),
        }
    }

    fn end(&mut self) {
        match self {
            Outage::Sqlite { locker, .. } => {
                if let Some(mut c) = locker.take() {
                    c.batch_execute("COMMIT").unwrap();
                }
            }
            Outage::Postgres { proxy, .. } => proxy.restore(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Row 1 and 8: a full disk

/// A PostgreSQL database whose files all live on a small tmpfs: a tablespace of its own
/// there, the database created in it. Only the WAL stays in the server's data directory, so
/// a full disk here fails exactly the writes that need a new page of a table or index.
/// Everything is undone on drop, also when the test failed: the database, the tablespace,
/// the mount, the folders.
struct PgSmallDisk {
    /// The transaction holding the padding rows (see [`PgSmallDisk::fill`]).
    padding: Option<PgConnection>,
    db: Option<TestDb>,
    admin: String,
    tablespace: Option<String>,
    mount: Option<PathBuf>,
    /// 0755, so the PostgreSQL server's user reaches the mount point inside.
    _base: tempfile::TempDir,
}

/// The filler table that takes the free space of a [`PgSmallDisk`].
const PG_FILLER: &str = "livepet_test_filler";

/// Whether a PostgreSQL error is its full disk: a table or index could not get a new page.
fn pg_disk_full(e: &diesel::result::Error) -> bool {
    let m = e.to_string();
    m.contains("could not extend file") || m.contains("No space left on device")
}

impl PgSmallDisk {
    /// `None` only when PostgreSQL is unavailable outside CI (see [`TestDb::new`]).
    fn create(mib: u32) -> Option<PgSmallDisk> {
        let (admin, mut conn) = postgres_admin()?;
        // The tablespace's folder must belong to the server's OS user: the one that owns its
        // data directory, which must be on this machine.
        #[derive(QueryableByName)]
        struct Setting {
            #[diesel(sql_type = Text)]
            data_directory: String,
        }
        let data = diesel::sql_query("SHOW data_directory")
            .get_result::<Setting>(&mut conn)
            .unwrap()
            .data_directory;
        let owner = match std::fs::metadata(&data) {
            Ok(m) => (m.uid(), m.gid()),
            Err(e) => {
                return skip_postgres(&format!(
                    "a tablespace needs the PostgreSQL server on this machine \
                     (its data directory {data}: {e})"
                ))
            }
        };
        let base = tempfile::tempdir().unwrap();
        std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut disk = PgSmallDisk {
            padding: None,
            db: None,
            admin: admin.clone(),
            tablespace: None,
            mount: None,
            _base: base,
        };
        let point = disk._base.path().join("disk");
        std::fs::create_dir(&point).unwrap();
        let (uid, gid) = owner;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={mib}m,uid={uid},gid={gid},mode=0700"))
            .arg("livepet-test")
            .arg(&point)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs (needs root) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        disk.mount = Some(point.clone());
        let name = format!(
            "livepet_test_ts_{}_{}",
            std::process::id(),
            rand::random::<u32>()
        );
        diesel::sql_query(format!(
            "CREATE TABLESPACE {name} LOCATION '{}'",
            point.display()
        ))
        .execute(&mut conn)
        .unwrap();
        disk.tablespace = Some(name.clone());
        disk.db = Some(TestDb::postgres_in_tablespace(admin, &mut conn, &name));
        Some(disk)
    }

    fn db(&self) -> &TestDb {
        self.db.as_ref().unwrap()
    }

    fn connect(&self) -> PgConnection {
        PgConnection::establish(self.db().raw_url()).unwrap()
    }

    /// Takes the disk's free space, then every byte the users and pets tables have left on
    /// their pages — with rows of an open transaction the server never sees — so that the
    /// server's next insert or update in them needs a page the disk no longer has.
    fn fill(&mut self) {
        let mut c = self.connect();
        // No dead row versions left for the server's reads to prune into free room.
        c.batch_execute("VACUUM users, pets").unwrap();
        // Autovacuum must not truncate the filler and so give space back.
        c.batch_execute(&format!(
            "CREATE TABLE {PG_FILLER} (b text) WITH (autovacuum_enabled = false)"
        ))
        .unwrap();
        let bulk = format!(
            "INSERT INTO {PG_FILLER} SELECT repeat('x', 1800) FROM generate_series(1, 500)"
        );
        loop {
            match c.batch_execute(&bulk) {
                Ok(()) => {}
                Err(e) if pg_disk_full(&e) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        // An insert fails only with less than a page free: the disk is full now. What the
        // tables' pages still hold is taken by rows of falling sizes, each kept if it fits,
        // down to rows smaller than any the server writes. Explicit ids leave the
        // sequences alone; short emails keep the index pages from splitting.
        c.batch_execute(
            "BEGIN; INSERT INTO users (id, email, password_hash, created_at) \
             VALUES (1000000000, 'padding@livepet.invalid', '', 0)",
        )
        .unwrap();
        let mut n = 0;
        for table in ["users", "pets"] {
            for size in [1800, 900, 400, 200, 100, 50, 20, 0] {
                loop {
                    n += 1;
                    let id = 1_000_000_000 + n;
                    let insert = match table {
                        "users" => format!(
                            "INSERT INTO users (id, email, password_hash, created_at) \
                             VALUES ({id}, 'p{n}@x', repeat('p', {size}), 0)"
                        ),
                        _ => format!(
                            "INSERT INTO pets (id, user_id, name, species, is_alive, \
                             created_at, updated_at) \
                             VALUES ({id}, 1000000000, repeat('p', {size}), '', false, 0, 0)"
                        ),
                    };
                    c.batch_execute("SAVEPOINT pad").unwrap();
                    match c.batch_execute(&insert) {
                        Ok(()) => c.batch_execute("RELEASE SAVEPOINT pad").unwrap(),
                        Err(e) if pg_disk_full(&e) => {
                            c.batch_execute("ROLLBACK TO SAVEPOINT pad").unwrap();
                            break;
                        }
                        Err(e) => panic!("padding {table}: {e}"),
                    }
                }
            }
        }
        self.padding = Some(c);
    }

    /// Gives the space back: the padding rolled back, the filler dropped.
    fn free(&mut self) {
        let mut padding = self.padding.take().unwrap();
        padding.batch_execute("ROLLBACK").unwrap();
        padding
            .batch_execute(&format!("DROP TABLE {PG_FILLER}"))
            .unwrap();
    }
}

impl Drop for PgSmallDisk {
    fn drop(&mut self) {
        drop(self.padding.take());
        // DROP DATABASE … WITH (FORCE), ending any connection still open.
        drop(self.db.take());
        if let Some(name) = self.tablespace.take() {
            let dropped = PgConnection::establish(&self.admin).map(|mut c| {
                diesel::sql_query(format!("DROP TABLESPACE IF EXISTS {name}")).execute(&mut c)
            });
            if !matches!(dropped, Ok(Ok(_))) {
                report(&format!("could not drop tablespace {name}: {dropped:?}"));
            }
        }
        if let Some(point) = self.mount.take() {
            let unmounted = Command::new("umount").arg(&point).status();
            if !matches!(unmounted, Ok(s) if s.success()) {
                // Lazy as the last resort: the folder is free again at once.
                let _ = Command::new("umount").arg("-l").arg(&point).status();
            }
        }
    }
}

/// A server's database on a disk the test fills and frees.
enum FullDisk {
    Sqlite {
        disk: SmallDisk,
        file: PathBuf,
        url: String,
    },
    Postgres(Box<PgSmallDisk>),
}

impl FullDisk {
    fn new(backend: Backend) -> Option<FullDisk> {
        match backend {
            Backend::Sqlite => {
                let disk = SmallDisk::mount(16);
                let file = disk.path().join("livepet.db");
                let url = format!("sqlite://{}", file.display());
                Some(FullDisk::Sqlite { disk, file, url })
            }
            Backend::Postgres => PgSmallDisk::create(16).map(|d| FullDisk::Postgres(Box::new(d))),
        }
    }

    fn url(&self) -> &str {
        match self {
            FullDisk::Sqlite { url, .. } => url,
            FullDisk::Postgres(disk) => disk.db().raw_url(),
        }
    }

    /// Fills the disk so that the server's next write needs space it does not have.
    async fn fill(&mut self) {
        match self {
            FullDisk::Sqlite { disk, file, .. } => {
                checkpoint_truncate(file).await;
                disk.fill();
            }
            FullDisk::Postgres(disk) => disk.fill(),
        }
    }

    fn free(&mut self) {
        match self {
            FullDisk::Sqlite { disk, .. } => disk.free(),
            FullDisk::Postgres(disk) => disk.free(),
        }
    }

    /// A connection of the test's own to the database.
    fn conn(&self) -> DbConn {
        match self {
            FullDisk::Sqlite { file, .. } => DbConn::Sqlite(sqlite(file)),
            FullDisk::Postgres(disk) => DbConn::Pg(disk.connect()),
        }
    }
}

/// How many adoptions the full disk refuses.
const REFUSED_ADOPTIONS: i64 = 2;

/// Adopting, signing up and spending a treat on a full disk: each is answered 503 with an
/// honest log line, and nothing of it exists anywhere (no phantom pet in memory, no account,
/// no spent treat, on screen or stored). Once space returns, the next adoption works and
/// ticks: on SQLite it gets the id the failed ones never kept; on PostgreSQL the sequence
/// does not give back the values the failed inserts drew, so it gets the one after them.
async fn a_full_disk_is_answered_503_with_nothing_half_done(backend: Backend) {
    let Some(mut disk) = FullDisk::new(backend) else {
        return;
    };
    let mut server = ServerProcess::start(
        disk.url(),
        &[
            "--tick-ms",
            "100",
            "--persist-ms",
            "600000",
            "--auth-attempts-per-minute",
            "100000",
        ],
    )
    .await;
    server.wait_logged("topped up treats", TIMEOUT).await;
    // An owner on their pet's page, and a friend who gives it treats.
    let mut owner = Client::new(&server.base);
    let before = owner.signup_with_pet("owner@example.com", "Before").await;
    let mut owner_ws = watching(&owner, &[before.id]).await;
    let mut friend = Client::new(&server.base);
    friend.sign_up("friend@example.com").await;
    let mut friend_ws = friend.ws().await;
    assert_eq!(friend_ws.greeting().await.1, 5);

    disk.fill().await;

    // Adopting: 503, twice, and no pet anywhere.
    for _ in 0..REFUSED_ADOPTIONS {
        let res = owner
            .post("/api/pets", json!({"name": "Phantom", "species": "cat"}))
            .await;
        assert_unavailable(res).await;
    }
    for n in 1..=REFUSED_ADOPTIONS {
        let phantom = PetId(before.id.0 + n);
        let res = owner.get(&format!("/api/pets/{phantom}")).await;
        assert_eq!(
            res.status(),
            404,
            "no phantom pet {phantom} answers from memory"
        );
    }
    let list: Vec<Value> = owner.get("/api/pets").await.json().await.unwrap();
    assert_eq!(list.len(), 1);
    let text = server.metrics().await;
    assert_eq!(metric(&text, "livepet_pets_alive"), Some(1.0));

    // Signing up: 503, and no session.
    let mut stranger = Client::new(&server.base);
    assert_unavailable(stranger.register("stranger@example.com").await).await;
    assert!(stranger.cookie.is_none());

    // A treat: an error frame; the count does not move, on screen or stored.
    friend_ws
        .send(json!({"type":"give_treat","pet_id":before.id}))
        .await;
    assert_eq!(friend_ws.error().await, ErrorCode::ServiceUnavailable);
    friend_ws.send(json!({"type":"ping"})).await;
    let told = friend_ws
        .until(|m| match m {
            ServerMsg::Treats { available } => Some(Some(*available)),
            ServerMsg::Pong => Some(None),
            _ => None,
        })
        .await;
    assert_eq!(
        told, None,
        "no treat count was sent for a treat never spent"
    );
    assert_eq!(friend.treats().await, 5);

    // The log says what happened, never a misleading constraint failure.
    let log = server.log();
    assert!(
        log.contains("database unavailable: the disk is full"),
        "log:\n{log}"
    );
    assert!(!log.contains("FOREIGN KEY"), "log:\n{log}");
    assert!(!log.contains("foreign key"), "log:\n{log}");
    assert!(!log.contains("internal error"), "log:\n{log}");

    // Space returns: the next adoption works, and ticks.
    disk.free();
    let real = owner.adopt("Real", "dog").await;
    let expected = match backend {
        Backend::Sqlite => before.id.0 + 1,
        Backend::Postgres => before.id.0 + REFUSED_ADOPTIONS + 1,
    };
    assert_eq!(real.id, PetId(expected));
    owner_ws
        .send(json!({"type":"watch","pet_id":real.id}))
        .await;
    let first = owner_ws.pet_frame(real.id).await;
    let later = owner_ws
        .until(|m| match m {
            ServerMsg::Pet { pet } if pet.id == real.id && pet.age > first.age => Some(pet.clone()),
            _ => None,
        })
        .await;
    assert!(later.alive);
    let res = owner.get(&format!("/api/pets/{}", real.id)).await;
    let shown: PetView = res.json().await.unwrap();
    assert!(shown.age >= later.age, "answered by the live, ticking pet");
    stranger.sign_up("stranger@example.com").await;
    friend_ws
        .send(json!({"type":"give_treat","pet_id":before.id}))
        .await;
    assert_eq!(friend_ws.treats().await, 4);

    // Stored: exactly what the users were told.
    server.stop().await;
    let mut c = disk.conn();
    let pets: Vec<(i64, String)> = queries::all_pets(&mut c)
        .unwrap()
        .into_iter()
        .map(|p| (p.id, p.name))
        .collect();
    assert_eq!(
        pets,
        vec![(before.id.0, "Before".into()), (real.id.0, "Real".into())]
    );
    #[derive(QueryableByName, Debug, PartialEq)]
    struct UserTreats {
        #[diesel(sql_type = Text)]
        email: String,
        #[diesel(sql_type = Integer)]
        available_treats: i32,
    }
    let users: Vec<UserTreats> = livepet_server::with_conn!(&mut c, |c| diesel::sql_query(
        "SELECT email, available_treats FROM users ORDER BY id"
    )
    .load(c)
    .unwrap());
    let users: Vec<(&str, i32)> = users
        .iter()
        .map(|u| (u.email.as_str(), u.available_treats))
        .collect();
    assert_eq!(
        users,
        vec![
            ("owner@example.com", 5),
            ("friend@example.com", 4),
            ("stranger@example.com", 5)
        ]
    );
}

#[actix_rt::test]
async fn a_full_disk_is_answered_503_with_nothing_half_done_sqlite() {
    a_full_disk_is_answered_503_with_nothing_half_done(Backend::Sqlite).await;
}

#[actix_rt::test]
async fn a_full_disk_is_answered_503_with_nothing_half_done_postgres() {
    a_full_disk_is_answered_503_with_nothing_half_done(Backend::Postgres).await;
}

// ---------------------------------------------------------------------------------------
// Rows 2 and 3: deaths are shown only once durable

/// A pet dies while the database is away: no `alive:false` frame and no dead view while the
/// death is not written; killed -9 then, the pet comes back alive and younger, and nobody
/// was ever told it died. With the database there, the final frame arrives and the death is
/// already stored.
async fn a_death_is_shown_only_once_durable(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let args = [
        "--tick-ms",
        "200",
        "--death-age",
        "10",
        "--persist-ms",
        "600000",
        "--auth-attempts-per-minute",
        "100000",
    ];
    let mut outage = Outage::new(&db, backend);
    let mut server = ServerProcess::start(outage.url(), &args).await;
    let email = "mortal@example.com";
    let mut owner = Client::new(&server.base);
    let pet = owner.signup_with_pet(email, "Mortal").await;
    let mut ws = watching(&owner, &[pet.id]).await;
    outage.begin();

    // It dies in the server while the database is away, and a write of it has failed.
    let mut seen = Vec::new();
    server
        .wait_line(&format!("pet {} died at age 11", pet.id), TIMEOUT)
        .await;
    read_while_waiting(
        &mut ws,
        &mut seen,
        &server,
        "livepet_persist_failures_total",
        |v| v >= 1.0,
    )
    .await;
    seen.extend(frames_until_pong(&mut ws).await);
    assert!(
        seen.iter().all(|p| p.alive && p.age <= 10),
        "no death shown while it is not durable: {seen:?}"
    );
    // A feed is not answered "it died" yet, and watching again shows it alive, as it was
    // last (the pet handles the feed before the watch).
    ws.send(json!({"type":"feed","pet_id":pet.id})).await;
    ws.send(json!({"type":"watch","pet_id":pet.id})).await;
    let rewatched = ws
        .until(|m| match m {
            ServerMsg::Pet { pet: p } if p.id == pet.id => Some(p.clone()),
            ServerMsg::Error { code, message } => {
                panic!("{code:?} before the death is durable: {message}")
            }
            _ => None,
        })
        .await;
    assert!(rewatched.alive && rewatched.age == 10, "{rewatched:?}");
    let res = owner.get(&format!("/api/pets/{}", pet.id)).await;
    if res.status() == 200 {
        let view: PetView = res.json().await.unwrap();
        assert!(view.alive, "the API shows the last living state: {view:?}");
        assert_eq!(view.age, 10);
    } else {
        // PostgreSQL is cut off: the session cannot even be checked.
        assert_unavailable(res).await;
    }

    // A crash now: the death never became durable, so the pet lives on, younger.
    server.signal("KILL");
    server.wait_exit(Duration::from_secs(10)).await;
    outage.end();
    let row = queries::find_pet(&mut db.conn(), pet.id).unwrap().unwrap();
    assert!(row.is_alive, "the death was never stored");
    assert!(row.age < 11);
    let mut server = ServerProcess::start(db.raw_url(), &args).await;
    let owner = log_in(&server.base, email).await;
    let mut ws = owner.ws().await;
    ws.greeting().await;
    ws.send(json!({"type":"watch","pet_id":pet.id})).await;
    let again = ws.pet_frame(pet.id).await;
    assert!(again.alive && again.age < 11, "{again:?}");

    // With the database there, the death is shown, and it is stored by then.
    let last = ws
        .until(|m| match m {
            ServerMsg::Pet { pet: p } if p.id == pet.id && !p.alive => Some(p.clone()),
            _ => None,
        })
        .await;
    assert_eq!(last.age, 11);
    let row = queries::find_pet(&mut db.conn(), pet.id).unwrap().unwrap();
    assert_eq!((row.is_alive, row.age), (false, 11), "shown, so stored");
    server.stop().await;
}

on_both_databases!(async a_death_is_shown_only_once_durable);

/// Forty pets die while the database is away: none is shown dead meanwhile, the persister is
/// not held once per death, and once the database returns every final frame reaches its
/// viewer within seconds, each death stored before it is shown. Meanwhile
/// `livepet_dirty_pets` keeps counting the unwritten pets.
async fn deaths_in_an_outage_reach_viewers_when_it_ends(backend: Backend) {
    const PETS: usize = 40;
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let mut outage = Outage::new(&db, backend);
    let mut server = ServerProcess::start(
        outage.url(),
        &[
            "--tick-ms",
            "500",
            "--death-age",
            "20",
            "--persist-ms",
            "300",
            "--auth-attempts-per-minute",
            "100000",
            // One owner adopts and watches every pet of the test at once.
            "--adoptions-per-minute",
            "100000",
            "--max-watched-per-user",
            "100000",
        ],
    )
    .await;
    let mut owner = Client::new(&server.base);
    owner.sign_up("keeper@example.com").await;
    let mut ids = Vec::new();
    for i in 0..PETS {
        ids.push(owner.adopt(&format!("Pet {i}"), "owl").await.id);
    }
    let mut ws = watching(&owner, &ids).await;
    server
        .wait_metric("livepet_persisted_total", TIMEOUT, |v| v >= PETS as f64)
        .await;
    outage.begin();

    let mut seen = Vec::new();
    read_while_waiting(&mut ws, &mut seen, &server, "livepet_deaths_pending", |v| {
        v == PETS as f64
    })
    .await;
    let text = server.metrics().await;
    let dirty = metric(&text, "livepet_dirty_pets").unwrap();
    assert!(
        dirty >= PETS as f64,
        "livepet_dirty_pets stays live while flushes fail: {dirty}"
    );
    assert!(metric(&text, "livepet_persist_failures_total").unwrap() >= 1.0);
    seen.extend(frames_until_pong(&mut ws).await);
    assert!(
        seen.iter().all(|p| p.alive),
        "no death shown while the database is away"
    );

    let back = Instant::now();
    outage.end();
    let mut dead = HashSet::new();
    while dead.len() < PETS {
        if let ServerMsg::Pet { pet } = ws.recv().await {
            if !pet.alive {
                assert_eq!(pet.age, 21);
                dead.insert(pet.id);
            }
        }
    }
    let late = back.elapsed();
    assert!(
        late < Duration::from_secs(10),
        "{PETS} deaths reached their viewer {late:?} after the database returned"
    );
    let rows = queries::all_pets(&mut db.conn()).unwrap();
    assert_eq!(rows.len(), PETS);
    assert!(
        rows.iter().all(|r| !r.is_alive && r.age == 21),
        "every death shown is stored"
    );
    server
        .wait_metric("livepet_deaths_pending", TIMEOUT, |v| v == 0.0)
        .await;
    server.stop().await;
    let log = server.log();
    assert_eq!(
        log.matches("database writes failing").count(),
        1,
        "one line per outage, not one per death"
    );
    report(&format!(
        "{PETS} deaths during an outage ({backend:?}) reached their viewer {:.2} s after it ended",
        late.as_secs_f64()
    ));
}

on_both_databases!(async deaths_in_an_outage_reach_viewers_when_it_ends);

// ---------------------------------------------------------------------------------------
// Row 5: the database file deleted or replaced

#[derive(Debug, Clone, Copy, PartialEq)]
enum Vanish {
    Deleted,
    Replaced,
}

/// The SQLite file deleted or replaced under a running server: the next flush fails loudly
/// (a log line, `livepet_database_file_lost`), writes answer 503, and SIGTERM neither says
/// "stopped cleanly" nor exits 0. A file put in its place is never written into.
async fn a_vanished_database_file_is_a_loud_failure(how: Vanish) {
    let db = TestDb::sqlite();
    let path = PathBuf::from(db.raw_url().trim_start_matches("sqlite://"));
    let mut server = ServerProcess::start(
        db.raw_url(),
        &[
            "--tick-ms",
            "50",
            "--persist-ms",
            "300",
            "--auth-attempts-per-minute",
            "100000",
        ],
    )
    .await;
    let mut owner = Client::new(&server.base);
    let pet = owner.signup_with_pet("gone@example.com", "Ghost").await;
    server
        .wait_metric("livepet_persisted_total", TIMEOUT, |v| v > 0.0)
        .await;

    let mut replacement = None;
    match how {
        Vanish::Deleted => {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
        Vanish::Replaced => {
            // A consistent copy of the database moved over the original, without the
            // original's WAL (which belongs to the original file, not to this one).
            let other = path.with_file_name("other.db");
            sqlite(&path)
                .batch_execute(&format!("VACUUM INTO '{}'", other.display()))
                .unwrap();
            let rows = queries::all_pets(&mut DbConn::Sqlite(sqlite(&other))).unwrap();
            std::fs::rename(&other, &path).unwrap();
            for suffix in ["-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            replacement = Some(rows);
        }
    }
    let expected = match how {
        Vanish::Deleted => "was deleted or moved while the server ran",
        Vanish::Replaced => "was replaced while the server ran",
    };
    server.wait_line(expected, TIMEOUT).await;
    server
        .wait_metric("livepet_database_file_lost", TIMEOUT, |v| v == 1.0)
        .await;
    server
        .wait_metric("livepet_persist_failures_total", TIMEOUT, |v| v >= 1.0)
        .await;

    // Writes are refused: they would be lost.
    let res = owner
        .post("/api/pets", json!({"name": "Never", "species": "cat"}))
        .await;
    assert_unavailable(res).await;
    let mut stranger = Client::new(&server.base);
    assert_unavailable(stranger.register("late@example.com").await).await;
    // The pet itself lives on in memory.
    let res = owner.get(&format!("/api/pets/{}", pet.id)).await;
    assert_eq!(res.status(), 200);

    server.signal("TERM");
    let status = server.wait_exit(TIMEOUT).await;
    let log = server.log();
    assert!(!status.success(), "a stop that lost data is not a success");
    assert!(!log.contains("stopped cleanly"), "log:\n{log}");
    assert!(log.contains("final flush failed"), "log:\n{log}");

    if let Some(before) = replacement {
        let after = queries::all_pets(&mut DbConn::Sqlite(sqlite(&path))).unwrap();
        assert_eq!(
            after, before,
            "nothing was written into the file put in its place"
        );
    }
}

#[actix_rt::test]
async fn a_deleted_database_file_is_a_loud_failure_sqlite() {
    a_vanished_database_file_is_a_loud_failure(Vanish::Deleted).await;
}

#[actix_rt::test]
async fn a_replaced_database_file_is_a_loud_failure_sqlite() {
    a_vanished_database_file_is_a_loud_failure(Vanish::Replaced).await;
}

// ---------------------------------------------------------------------------------------
// Row 9: damaged rows

/// Damage done to one pet's row by hand, and the problem the server must name.
struct Damage {
    pet: usize,
    sql: &'static str,
    problem: &'static str,
}

fn damage_for(backend: Backend) -> (Vec<&'static str>, Vec<Damage>) {
    match backend {
        // SQLite keeps any value in any column; NOT NULL is dropped by editing the schema.
        Backend::Sqlite => (
            vec![
                "PRAGMA writable_schema = ON",
                "UPDATE sqlite_schema SET sql = replace(sql, 'hunger INTEGER NOT NULL', \
                 'hunger INTEGER') WHERE name = 'pets'",
                "PRAGMA writable_schema = OFF",
            ],
            vec![
                Damage {
                    pet: 1,
                    sql: "age = 4294967297",
                    problem: "age is 4294967297",
                },
                Damage {
                    pet: 2,
                    sql: "age = 5000000000",
                    problem: "age is 5000000000",
                },
                Damage {
                    pet: 3,
                    sql: "age = 'abc'",
                    problem: "age is 'abc'",
                },
                Damage {
                    pet: 4,
                    sql: "is_alive = 2",
                    problem: "is_alive is 2",
                },
                Damage {
                    pet: 5,
                    sql: "hunger = NULL",
                    problem: "hunger is NULL",
                },
                Damage {
                    pet: 6,
                    sql: "species = 'dragon'",
                    problem: "unknown species `dragon`",
                },
            ],
        ),
        // PostgreSQL holds its column types; what is left is a value outside the domain,
        // a NULL once NOT NULL is dropped, and an unknown species.
        Backend::Postgres => (
            vec![
                "ALTER TABLE pets ALTER COLUMN hunger DROP NOT NULL",
                "ALTER TABLE pets ALTER COLUMN name DROP NOT NULL",
            ],
            vec![
                Damage {
                    pet: 1,
                    sql: "age = -7",
                    problem: "age is -7",
                },
                Damage {
                    pet: 2,
                    sql: "hunger = NULL",
                    problem: "hunger is NULL",
                },
                Damage {
                    pet: 3,
                    sql: "name = NULL",
                    problem: "name is NULL",
                },
                Damage {
                    pet: 4,
                    sql: "species = 'dragon'",
                    problem: "unknown species `dragon`",
                },
            ],
        ),
    }
}

/// Rows damaged by hand: at start each bad pet is skipped with a line naming it and its
/// problem, the sound ones tick, the owner's list answers 200 and shows each damaged pet as
/// such, and the damaged rows are left exactly as they were.
async fn damaged_rows_are_named_and_skipped(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let email = "keeper@example.com";
    let mut server = ServerProcess::start(db.raw_url(), &[]).await;
    let mut owner = Client::new(&server.base);
    owner.sign_up(email).await;
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(owner.adopt(&format!("Pet {i}"), "fox").await.id);
    }
    server.stop().await;

    let (schema, damage) = damage_for(backend);
    {
        let mut conn = db.conn();
        livepet_server::with_conn!(&mut conn, |c| {
            for sql in &schema {
                c.batch_execute(sql).unwrap();
            }
        });
    }
    // A fresh connection, so SQLite rereads the edited schema.
    let mut conn = db.conn();
    livepet_server::with_conn!(&mut conn, |c| {
        for d in &damage {
            let sql = format!("UPDATE pets SET {} WHERE id = {}", d.sql, ids[d.pet]);
            c.batch_execute(&sql).unwrap();
        }
    });
    drop(conn);

    let mut server = ServerProcess::start(db.raw_url(), &["--tick-ms", "100"]).await;
    // Pets are loaded before the server listens: every line is in the log already.
    let log = server.log();
    for d in &damage {
        let id = ids[d.pet];
        let line = format!(
            "pets row {id} is damaged: {}; pet {id} not started",
            d.problem
        );
        assert!(log.contains(&line), "no `{line}` in the log:\n{log}");
    }
    let sound: Vec<PetId> = (0..ids.len())
        .filter(|i| damage.iter().all(|d| d.pet != *i))
        .map(|i| ids[i])
        .collect();
    assert_eq!(
        metric(&server.metrics().await, "livepet_pets_alive"),
        Some(sound.len() as f64)
    );

    // The sound pets tick.
    let owner = log_in(&server.base, email).await;
    let mut ws = watching(&owner, &sound).await;
    let a = ws.pet_frame(sound[0]).await;
    let b = ws
        .until(|m| match m {
            ServerMsg::Pet { pet } if pet.id == sound[0] && pet.age > a.age => Some(pet.clone()),
            _ => None,
        })
        .await;
    assert!(b.alive);

    // The list answers, every pet in it, each damaged one marked with its problem.
    let res = owner.get("/api/pets").await;
    assert_eq!(res.status(), 200);
    let list: Vec<Value> = res.json().await.unwrap();
    assert_eq!(list.len(), ids.len());
    for entry in &list {
        let id = PetId(entry["id"].as_i64().unwrap());
        let i = ids.iter().position(|p| *p == id).unwrap();
        match damage.iter().find(|d| d.pet == i) {
            Some(d) => {
                assert_eq!(entry["damaged"], d.problem, "{entry}");
                assert_eq!(entry["alive"], false, "{entry}");
            }
            None => {
                assert!(entry.get("damaged").is_none(), "{entry}");
                assert_eq!(entry["alive"], true, "{entry}");
                // Still readable as a plain PetView by clients that know no more.
                serde_json::from_value::<PetView>(entry.clone()).unwrap();
            }
        }
    }
    let one = damage.first().unwrap();
    let res = owner.get(&format!("/api/pets/{}", ids[one.pet])).await;
    assert_eq!(res.status(), 200);
    let entry: Value = res.json().await.unwrap();
    assert_eq!(entry["damaged"], one.problem);
    server.stop().await;

    // The damaged rows were left as they were: nothing made up was written back.
    #[derive(QueryableByName)]
    struct Raw {
        #[diesel(sql_type = Text)]
        value: String,
    }
    let mut conn = db.conn();
    let raw = |c: &mut DbConn, sql: String| -> String {
        livepet_server::with_conn!(c, |c| diesel::sql_query(&sql)
            .get_result::<Raw>(c)
            .unwrap()
            .value)
    };
    for d in &damage {
        let column = d.sql.split(' ').next().unwrap();
        let value = match backend {
            Backend::Sqlite => raw(
                &mut conn,
                format!(
                    "SELECT quote({column}) AS value FROM pets WHERE id = {}",
                    ids[d.pet]
                ),
            ),
            Backend::Postgres => raw(
                &mut conn,
                format!(
                    "SELECT coalesce({column}::text, 'NULL') AS value FROM pets WHERE id = {}",
                    ids[d.pet]
                ),
            ),
        };
        let written = d.sql.split(" = ").nth(1).unwrap();
        let expected = match (backend, written) {
            (Backend::Postgres, w) => w.trim_matches('\'').to_string(),
            (Backend::Sqlite, w) => w.to_string(),
        };
        assert_eq!(value, expected, "pet {} ({})", ids[d.pet], d.problem);
    }
}

on_both_databases!(async damaged_rows_are_named_and_skipped);

// ---------------------------------------------------------------------------------------
// Row 1: one actor per pet id

/// A viewer that hands every frame it receives to the test.
struct Probe(tokio::sync::mpsc::UnboundedSender<PetView>);

impl Actor for Probe {
    type Context = Context<Self>;
}

impl Handler<PetFrame> for Probe {
    type Result = ();
    fn handle(&mut self, f: PetFrame, _: &mut Context<Self>) {
        if let Ok(ServerMsg::Pet { pet }) = serde_json::from_str::<ServerMsg>(&f.json) {
            let _ = self.0.send(pet);
        }
    }
}

/// Starting an id that is already live is refused before a second actor exists; and an
/// actor that stops after a newer one took its id leaves the newer one registered and
/// ticking (the phantom-pet freeze of issue 14).
#[actix_rt::test]
async fn one_actor_per_pet_id_and_each_removes_only_its_own_entry_sqlite() {
    let db = TestDb::sqlite();
    db.seed(1);
    let app = TestApp::spawn_on(db, |_| {}).await;
    let world = app.world().clone();
    let id = PetId(1);
    let first = world.registry.get(id).unwrap();
    let seeded = first.send(Get).await.unwrap();
    let twin = PetRecord {
        id,
        owner: UserId(1),
        name: "Twin".into(),
        species: Species::Cat,
        born_at: 0,
        state: PetState::newborn(&world.rules),
    };
    let refused = world.try_start_pet(twin.clone()).unwrap_err();
    assert!(
        refused.live == first,
        "the live actor is named, not replaced"
    );
    drop(refused);
    let still = world.registry.get(id).unwrap();
    assert!(still == first);
    assert_eq!(still.send(Get).await.unwrap().name, seeded.name);
    drop(still);

    // A newer actor takes the id (as an adoption reusing a freed id does); then the old one
    // stops.
    world.registry.forget(id);
    let second = world
        .try_start_pet(PetRecord {
            name: "Second".into(),
            ..twin
        })
        .unwrap();
    assert_eq!(second.send(Get).await.unwrap().name, "Second");
    let old = first.downgrade();
    drop(first);
    wait_for("the old actor to stop", TIMEOUT, || {
        old.upgrade().is_none().then_some(())
    })
    .await;
    assert!(world.registry.get(id) == Some(second.clone()));

    // And the newer one ticks.
    let (tx, mut frames) = tokio::sync::mpsc::unbounded_channel();
    second
        .send(Watch {
            by: UserId(1),
            viewer: 1,
            to: Probe(tx).start().recipient(),
        })
        .await
        .unwrap()
        .unwrap();
    let a = next_frame(&mut frames).await;
    let b = next_frame(&mut frames).await;
    assert_eq!(b.age, a.age + 1);
}

async fn next_frame(frames: &mut tokio::sync::mpsc::UnboundedReceiver<PetView>) -> PetView {
    tokio::time::timeout(TIMEOUT, frames.recv())
        .await
        .unwrap()
        .unwrap()
}
