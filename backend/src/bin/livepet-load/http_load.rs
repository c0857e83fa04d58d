//! The `http` load: one user and one pet, C keep-alive clients looping on
//! `GET /api/pets/{id}` for a while; requests per second and latency percentiles.

use crate::setup;
use crate::stats::{now_ms, own_cpu_seconds, raise_fd_limit, Percentiles};
use anyhow::{anyhow, bail};
use clap::Args;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// The server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// Concurrent keep-alive clients.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds before measuring starts (connections open, caches warm).
    #[arg(long, default_value_t = 2.0)]
    warmup_s: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 30.0)]
    duration_s: f64,
    /// Client threads, each with its own event loop and share of the clients.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[arg(long, default_value = "load-generator-password")]
    password: String,
}

#[derive(Debug, Default)]
struct ThreadResult {
    latencies_ms: Vec<f64>,
    statuses: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
struct Report {
    kind: &'static str,
    concurrency: usize,
    window_s: f64,
    requests: usize,
    requests_per_second: f64,
    latency_ms: Percentiles,
    non_200: BTreeMap<String, u64>,
    load_cpu_percent: f64,
}

pub fn run(args: HttpArgs) -> anyhow::Result<()> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    raise_fd_limit(args.concurrency as u64 + 256)?;
    let base = args.url.trim_end_matches('/').to_string();
    let (cookie, pet) = actix_rt::System::new().block_on(async {
        let client = setup::client();
        let email = format!(
            "http-{:x}{:x}@bench.livepet.local",
            std::process::id(),
            now_ms()
        );
        let cookie = setup::sign_up(&client, &base, &email, &args.password).await?;
        let pet = setup::adopt(&client, &base, &cookie, "Http Bench").await?;
        anyhow::Ok((cookie, pet.id))
    })?;
    let start = now_ms() + (args.warmup_s * 1000.0) as i64;
    let end = start + (args.duration_s * 1000.0) as i64;
    println!("WINDOW {start} {end}");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let window = Arc::new((AtomicI64::new(start), AtomicI64::new(end)));
    let threads = args.threads.max(1);
    let mut handles = Vec::new();
    for t in 0..threads {
        let n = args.concurrency / threads + usize::from(t < args.concurrency % threads);
        let (url, cookie, window) = (
            format!("{base}/api/pets/{}", pet.0),
            cookie.clone(),
            window.clone(),
        );
        handles.push(std::thread::spawn(move || {
            actix_rt::System::new().block_on(run_thread(n, url, cookie, window))
        }));
    }
    std::thread::sleep(Duration::from_millis((start - now_ms()).max(0) as u64));
    let cpu0 = own_cpu_seconds();
    std::thread::sleep(Duration::from_millis((end - now_ms()).max(0) as u64));
    let cpu1 = own_cpu_seconds();
    let mut lat = Vec::new();
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    for h in handles {
        let r = h.join().map_err(|_| anyhow!("a client thread panicked"))?;
        lat.extend(r.latencies_ms);
        for (k, v) in r.statuses {
            *statuses.entry(k).or_default() += v;
        }
    }
    let window_s = (end - start) as f64 / 1000.0;
    let report = Report {
        kind: "http",
        concurrency: args.concurrency,
        window_s,
        requests: lat.len(),
        requests_per_second: lat.len() as f64 / window_s.max(1e-9),
        latency_ms: Percentiles::of(lat),
        non_200: statuses,
        load_cpu_percent: 100.0 * (cpu1 - cpu0) / window_s.max(1e-9),
    };
    eprintln!(
        "{:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, non-200: {:?}",
        report.requests_per_second, report.latency_ms.p50, report.latency_ms.p99, report.non_200
    );
    println!("RESULT {}", serde_json::to_string(&report)?);
    Ok(())
}

async fn run_thread(
    clients: usize,
    url: String,
    cookie: String,
    window: Arc<(AtomicI64, AtomicI64)>,
) -> ThreadResult {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .max_http_version(awc::http::Version::HTTP_11)
        .connector(awc::Connector::new().limit(clients.max(1)))
        .finish();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url, cookie, window) =
            (client.clone(), url.clone(), cookie.clone(), window.clone());
        tasks.push(actix_rt::spawn(async move {
            let mut r = ThreadResult::default();
            let header = format!("{}={cookie}", setup::COOKIE);
            loop {
                let (start, end) = (
                    window.0.load(Ordering::Relaxed),
                    window.1.load(Ordering::Relaxed),
                );
                if now_ms() >= end {
                    break;
                }
                let t = Instant::now();
                let res = client
                    .get(&url)
                    .insert_header(("Cookie", header.as_str()))
                    .send()
                    .await;
                let status = match res {
                    Ok(mut res) => {
                        // Read the whole body: the request is done when the client has it.
                        let _ = res.body().await;
                        res.status().as_u16().to_string()
                    }
                    Err(e) => format!("error: {e}"),
                };
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                let now = now_ms();
                if now >= start && now < end {
                    if status == "200" {
                        r.latencies_ms.push(ms);
                    } else {
                        *r.statuses.entry(status).or_default() += 1;
                    }
                }
            }
            r
        }));
    }
    let mut out = ThreadResult::default();
    for t in tasks {
        if let Ok(r) = t.await {
            out.latencies_ms.extend(r.latencies_ms);
            for (k, v) in r.statuses {
                *out.statuses.entry(k).or_default() += v;
            }
        }
    }
    out
}
