//! Hostile clients harm nobody else: clients that never read, slow-loris HTTP clients and a
//! thousand idle connections, all at once, while a well-behaved viewer is measured.

use crate::client::{Client, Viewer};
use crate::helpers::{metric, TestDb};
use crate::process::ServerProcess;
use livepet_server::clock::now_ms;
use livepet_shared::wire::ServerMsg;
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The server's resident memory, in bytes.
async fn rss(server: &ServerProcess) -> f64 {
    metric(&server.metrics().await, "process_resident_memory_bytes").unwrap()
}

#[actix_rt::test]
async fn hostile_clients_do_not_harm_a_well_behaved_viewer_sqlite() {
    let db = TestDb::sqlite();
    let server = ServerProcess::start(
        db.raw_url(),
        &[
            "--tick-ms",
            "50",
            "--auth-attempts-per-minute",
            "100000",
            // Each stuck client adopts and watches 40 pets at once: past a person's limits,
            // which this test is not about.
            "--adoptions-per-minute",
            "100000",
            "--max-watched-per-user",
            "100000",
        ],
    )
    .await;
    let (base, addr) = (server.base.clone(), server.addr);

    // The well-behaved viewer.
    let mut good = Viewer::sign_up(&base, "good@example.com", "Steady").await;

    let rss_before = rss(&server).await;

    // Never-reading clients: each watches 40 pets, then never reads a byte again.
    let mut stuck = Vec::new();
    for i in 0..3 {
        let mut c = Client::new(&base);
        c.sign_up(&format!("stuck{i}@example.com")).await;
        let mut ids = Vec::new();
        for k in 0..40 {
            ids.push(c.adopt(&format!("Heavy {i}-{k}"), "turtle").await.id);
        }
        let mut ws = c.ws().await;
        for id in ids {
            ws.send(json!({"type":"watch","pet_id":id})).await;
        }
        stuck.push(ws); // kept open, never polled
    }

    // Slow loris: headers a byte at a time, forever.
    let loris: Vec<_> = (0..50)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                let _ = s.write_all(b"GET /api/me HTTP/1.1\r\nHost: x\r\n");
                s.set_read_timeout(Some(Duration::from_millis(300)))
                    .unwrap();
                // Trickle until the server hangs up on us.
                for _ in 0..200 {
                    if s.write_all(b"X").is_err() {
                        return true;
                    }
                    let mut b = [0u8; 512];
                    match s.read(&mut b) {
                        Ok(0) => return true,
                        Ok(_) => return true, // an error response, then close
                        Err(_) => {}
                    }
                }
                false
            })
        })
        .collect();

    // A thousand connections that never send anything.
    let idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();

    // Meanwhile: the good viewer's tick-to-client latency. First read past what queued up
    // on its socket while this thread was busy opening connections (the pong comes after it).
    good.ws.send(json!({"type":"ping"})).await;
    good.ws
        .until(|m| matches!(m, ServerMsg::Pong).then_some(()))
        .await;
    let mut latencies = Vec::new();
    while latencies.len() < 150 {
        if let ServerMsg::Pet { pet } = good.ws.recv().await {
            latencies.push(now_ms() - pet.at);
        }
    }
    latencies.sort_unstable();
    let p99 = latencies[latencies.len() * 99 / 100];
    assert!(p99 < 100, "good viewer p99 {p99} ms under attack");

    // The stuck clients were dropped instead of buffered without limit.
    let dropped = server
        .wait_metric(
            "livepet_slow_viewers_dropped_total",
            Duration::from_secs(90),
            |v| v > 0.0,
        )
        .await;

    // Slow loris and idle connections are cut by the server's request timeout.
    let cut = loris
        .into_iter()
        .filter_map(|h| h.join().ok())
        .filter(|hung_up| *hung_up)
        .count();
    assert_eq!(cut, 50, "every slow-loris connection was cut");
    for mut s in idle.into_iter().take(50) {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut b = [0u8; 512];
        // EOF, or a 408 response followed by EOF: the server let go either way.
        let mut total = 0;
        loop {
            match s.read(&mut b) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) => panic!("idle connection still open after 20 s: {e}"),
            }
        }
        assert!(total < 512);
    }

    let growth = (rss(&server).await - rss_before).max(0.0) / (1024.0 * 1024.0);
    assert!(growth < 100.0, "server memory grew by {growth:.0} MB");
    // Still serving.
    let res = Client::new(&base).get("/healthz").await;
    assert_eq!(res.status(), 200);
    crate::helpers::report(&format!(
        "hostile clients: good viewer p99 {p99} ms; {dropped} slow viewers dropped; \
         server rss growth {growth:.0} MB"
    ));
    drop(stuck);
}
