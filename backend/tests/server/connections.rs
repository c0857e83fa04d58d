//! The edge of one box, with the real binary: it raises its own open-file limit, answers
//! connections past `--max-connections` at once with a 503, and survives running out of
//! descriptors anyway, logging that once, while connected viewers keep their frames.

use crate::client::{Client, Viewer};
use crate::helpers::{metric, TestDb};
use crate::process::ServerProcess;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The soft and hard "Max open files" of a process, from /proc.
fn open_file_limits(pid: &str) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums[1])
}

/// Sends one raw HTTP/1.1 request on a new connection and reads the answer until the server
/// closes the connection: the whole response, and how long the first byte of it took.
async fn raw_request(addr: std::net::SocketAddr, request: &str) -> (String, Duration) {
    let began = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = vec![0; 1];
    let read = async {
        stream.read_exact(&mut out).await.unwrap();
        let first = began.elapsed();
        stream.read_to_end(&mut out).await.unwrap();
        first
    };
    let first = tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("the refused connection was left open instead of answered and closed");
    (String::from_utf8_lossy(&out).into_owned(), first)
}

/// A WebSocket upgrade as a browser sends it, with the session cookie.
fn upgrade_request(base: &str, cookie: &str) -> String {
    let host = base.trim_start_matches("http://");
    format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nOrigin: {base}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: livepet_session={cookie}\r\n\r\n"
    )
}

/// Polls /metrics on one kept-alive connection (a new connection may be what is refused).
async fn wait_metric(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    ok: impl Fn(f64) -> bool,
) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if let Some(v) = metric(&text, name).filter(|v| ok(*v)) {
            return v;
        }
        assert!(Instant::now() < deadline, "metric {name} never got there");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn raises_its_open_file_limit_and_refuses_past_max_connections_at_once() {
    let db = TestDb::sqlite();
    let (_, hard) = open_file_limits("self");
    assert!(
        hard > 1_024,
        "this test needs a hard open-file limit above 1024"
    );
    let mut server = ServerProcess::start_after(
        "ulimit -Sn 1024",
        db.raw_url(),
        &["--tick-ms", "100", "--max-connections", "12"],
    )
    .await;
    let pid = server.pid().to_string();
    assert_eq!(open_file_limits(&pid), (hard, hard), "soft raised to hard");
    let line = server
        .wait_logged("open-file limit", Duration::from_secs(10))
        .await;
    assert!(line.contains("raised from 1024"), "{line}");
    assert!(line.contains("up to 12 connections"), "{line}");
    // A new connection per scrape: an idle kept-alive one would be closed by the server
    // at some moment and change the count under the test.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let base = server.base.clone();
    assert_eq!(
        wait_metric(&http, &base, "livepet_open_files_limit", |_| true).await,
        hard as f64
    );
    assert_eq!(
        wait_metric(&http, &base, "livepet_max_connections", |_| true).await,
        12.0
    );

    // A viewer watching its pet; once the sign-ups' idle connections are gone, only its
    // socket and the scrape itself are open.
    let mut viewer = Viewer::sign_up(&base, "viewer@example.com", "Steady").await;
    let mut tab = Client::new(&base);
    tab.sign_up("tabs@example.com").await;
    wait_metric(&http, &base, "livepet_connections_open", |v| v == 2.0).await;
    // More sockets until the server is full: 11 sockets and one spare place.
    let mut tabs = Vec::new();
    loop {
        match tab.upgrade(Some(&base), &[]).await {
            Ok(ws) => tabs.push(ws),
            Err(status) => {
                assert_eq!(status, 503);
                break;
            }
        }
        assert!(tabs.len() <= 12, "never refused");
    }
    assert_eq!(tabs.len(), 11);
    let cookie = tab.cookie.clone().unwrap();
    let (answer, took) = raw_request(server.addr, &upgrade_request(&base, &cookie)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("retry-after: "), "{answer}");
    assert!(lower.contains("connection: close"), "{answer}");
    assert!(
        answer.contains(r#""code":"service_unavailable""#),
        "{answer}"
    );
    crate::helpers::report(&format!(
        "connection past --max-connections 12 answered 503 in {} ms",
        took.as_millis()
    ));
    // A plain request on a new connection gets the same immediate answer.
    let (plain, _) = raw_request(
        server.addr,
        &format!("GET /api/me HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr),
    )
    .await;
    assert!(plain.starts_with("HTTP/1.1 503"), "{plain}");
    let refused = wait_metric(&http, &base, "livepet_connections_refused_total", |_| true).await;
    assert!(refused >= 3.0, "{refused}");

    // The viewer already connected kept its frames throughout.
    let before = viewer.ws.pet_frame(viewer.pet.id).await;
    let after = viewer.ws.pet_frame(viewer.pet.id).await;
    assert_eq!(after.age, before.age + 1);

    // Closing sockets makes room again.
    drop(tabs.drain(..2));
    wait_metric(&http, &base, "livepet_connections_open", |v| v <= 11.0).await;
    let mut again = tab.ws().await;
    assert!(again.greeting().await.1 > 0);
    server.stop().await;
}

#[actix_rt::test]
async fn running_out_of_descriptors_is_logged_once_and_harms_no_one_connected() {
    let db = TestDb::sqlite();
    // A small hard limit, and a --max-connections above what it allows: the descriptors run
    // out before the gate refuses anyone.
    let mut server = ServerProcess::start_after(
        "ulimit -Sn 256 && ulimit -Hn 256",
        db.raw_url(),
        &[
            "--tick-ms",
            "100",
            "--persist-ms",
            "300",
            "--max-connections",
            "100000",
        ],
    )
    .await;
    let line = server
        .wait_logged("is more than the open-file limit", Duration::from_secs(10))
        .await;
    assert!(
        line.contains("open-file limit 256 leaves room for"),
        "{line}"
    );
    let base = server.base.clone();
    let http = reqwest::Client::new();
    let mut viewer = Viewer::sign_up(&base, "viewer@example.com", "Steady").await;
    let persisted = wait_metric(&http, &base, "livepet_persisted_total", |v| v > 0.0).await;

    // Connections the kernel queues for the server until it has no descriptor left for them.
    let mut flood = Vec::new();
    for _ in 0..400 {
        flood.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // The accept loop retries twice a second: several failures, one line. Scraped on the
    // kept-alive connection, warm since before the flood.
    wait_metric(&http, &base, "livepet_accept_errors_total", |v| v >= 4.0).await;
    server
        .wait_logged("new connections are failing", Duration::from_secs(30))
        .await;
    // Pets tick, the persister writes, the viewer gets every frame.
    let before = viewer.ws.pet_frame(viewer.pet.id).await;
    let after = viewer.ws.pet_frame(viewer.pet.id).await;
    assert_eq!(after.age, before.age + 1);
    wait_metric(&http, &base, "livepet_persisted_total", |v| v > persisted).await;
    let log = server.log();
    assert_eq!(
        log.matches("new connections are failing").count(),
        1,
        "{log}"
    );
    assert!(!log.contains("Error accepting connection"), "{log}");

    // The flood goes; the server says so once, and takes new viewers again.
    drop(flood);
    server
        .wait_line("accepting connections again", Duration::from_secs(60))
        .await;
    let mut late = Viewer::sign_up(&base, "late@example.com", "Late").await;
    late.ws.pet_frame(late.pet.id).await;
    server.stop().await;
}
