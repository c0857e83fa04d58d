//! `livepet-floor`: the floor `cargo xtask bench` measures LivePet against. N bare actix
//! actors spread over the same number of arbiter threads as the server, each doing only a
//! pet's tick arithmetic (age + 1, hunger + 5 capped at 500) on its own `run_interval`
//! started when the actor starts. Nothing else: no registry, no persistence, no metrics,
//! no stagger (the actors' timers are as spread as their start was).
//!
//! Prints `STARTED <n> <seconds>` once every actor is running and `TICKED <n> <seconds>`
//! once every actor has ticked at least once (seconds since the process started), then runs
//! until killed. The harness reads memory and CPU from /proc.

use actix::prelude::*;
use clap::Parser;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The same allocator as the server, so the floor differs from it only in what it runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "livepet-floor")]
struct Args {
    /// Actors to start.
    #[arg(long)]
    actors: u64,
    /// Arbiter threads (default: one per core, as the server).
    #[arg(long)]
    arbiters: Option<usize>,
    /// Milliseconds between two ticks of an actor.
    #[arg(long, default_value_t = 5000)]
    tick_ms: u64,
}

struct Counters {
    started: AtomicU64,
    ticked_once: AtomicU64,
}

struct Bare {
    age: u32,
    hunger: u32,
    period: Duration,
    counters: Arc<Counters>,
}

impl Bare {
    fn tick(&mut self) {
        self.age += 1;
        self.hunger = (self.hunger + 5).min(500);
    }
}

impl Actor for Bare {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.counters.started.fetch_add(1, Ordering::Relaxed);
        ctx.run_interval(self.period, |act, _| {
            if act.age == 0 {
                act.counters.ticked_once.fetch_add(1, Ordering::Relaxed);
            }
            act.tick();
        });
    }
}

fn main() {
    let began = Instant::now();
    let args = Args::parse();
    let threads = args
        .arbiters
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let counters = Arc::new(Counters {
        started: AtomicU64::new(0),
        ticked_once: AtomicU64::new(0),
    });
    let system = System::new();
    let arbiters: Vec<Arbiter> = (0..threads.max(1)).map(|_| Arbiter::new()).collect();
    let period = Duration::from_millis(args.tick_ms.max(1));
    for (i, arbiter) in arbiters.iter().enumerate() {
        let counters = counters.clone();
        let (n, threads) = (args.actors, arbiters.len() as u64);
        arbiter.spawn_fn(move || {
            // Actor k lives on arbiter k % threads, as pets do.
            let mut k = i as u64 + 1;
            while k <= n {
                Bare {
                    age: 0,
                    hunger: 250,
                    period,
                    counters: counters.clone(),
                }
                .start();
                k += threads;
            }
        });
    }
    let n = args.actors;
    std::thread::spawn(move || {
        let mut said_started = false;
        loop {
            if !said_started && counters.started.load(Ordering::Relaxed) >= n {
                said_started = true;
                println!("STARTED {n} {:.3}", began.elapsed().as_secs_f64());
                let _ = std::io::stdout().flush();
            }
            if counters.ticked_once.load(Ordering::Relaxed) >= n {
                println!("TICKED {n} {:.3}", began.elapsed().as_secs_f64());
                let _ = std::io::stdout().flush();
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    system.run().ok();
    drop(arbiters);
}
