//! `cargo xtask run --nodes N` with N > 1: one world on N local `livepet serve` processes
//! sharing a PostgreSQL database and a NATS server (DESIGN.md, "Several nodes").
//!
//! Ctrl-C and SIGTERM must stop the nodes gracefully (each hands its shards off and flushes)
//! and only then the nats-server we started, which they need for the hand-off. Rust's
//! standard library cannot catch a signal, and the workspace forbids `unsafe` (so no
//! `signal(2)` of our own), so once everything is built this process becomes a small `sh`
//! that traps INT, TERM and HUP, and starts the supervisor (this binary again, as the hidden
//! `cluster-supervise`) through `setsid`: in a session of its own, the terminal's Ctrl-C
//! reaches neither it nor the nodes, only the shell. The shell tells the supervisor through
//! a pipe on its stdin: a line per signal (the first stops gracefully, a second kills),
//! end of file if the shell itself was killed (stop gracefully). The process id the user
//! sees stays the same throughout (cargo `exec`s us, we `exec` the shell).

use crate::bench_sys::{self, Proc};
use crate::cluster;
use crate::pgcheck;
use crate::proc::{self, step};
use anyhow::{bail, Context as _, Result};
use clap::Args;
use std::fmt::Display;
use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The database a local cluster uses when DATABASE_URL is not set (the project's machines
/// run PostgreSQL there with trust auth).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/livepet";
const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// How long every node may take to answer 200 on /readyz: loading is seconds per million
/// pets, so this only trips on a node that is stuck.
const READY_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a graceful stop may take before the nodes are killed: the server's own 30 s
/// shutdown timeout, the hand-off and a final flush of a large world.
const STOP_TIMEOUT: Duration = Duration::from_secs(180);
/// How often progress is printed while the nodes get ready.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// The shell in front of the supervisor (see the module comment). `$0` is this binary,
/// `$@` the supervisor's arguments. The FIFO gives the supervisor a pipe whose writing end
/// only the shell holds; opening it blocks until both ends are open, so no line is lost.
/// `setsid -w`: should setsid have to fork (when its caller leads a process group), it waits
/// for the supervisor, so `$!` lives exactly as long. `wait` returns early when a trapped
/// signal arrives, hence the loop; the last `wait` picks up the real exit status if the
/// supervisor ended between the two.
const FRONT_SHELL: &str = r#"dir=$(mktemp -d) || exit 1
mkfifo "$dir/control" || exit 1
setsid -w "$0" "$@" <"$dir/control" &
pid=$!
exec 3>"$dir/control"
rm -rf "$dir"
trap '' PIPE
trap 'echo stop >&3' INT TERM HUP
status=0
while :; do
  wait "$pid"
  status=$?
  kill -0 "$pid" 2>/dev/null || break
done
wait "$pid" 2>/dev/null
last=$?
[ "$last" -ne 127 ] && status=$last
exit "$status""#;

/// One node of the plan: its name and the addresses it listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodePlan {
    name: String,
    bind: String,
    metrics_bind: Option<String>,
}

impl NodePlan {
    /// `NAME,BIND[,METRICS_BIND]`, as the supervisor takes it.
    fn to_arg(&self) -> String {
        match &self.metrics_bind {
            Some(m) => format!("{},{},{m}", self.name, self.bind),
            None => format!("{},{}", self.name, self.bind),
        }
    }

    fn from_arg(s: &str) -> Result<NodePlan> {
        let mut it = s.split(',');
        match (it.next(), it.next(), it.next(), it.next()) {
            (Some(name), Some(bind), metrics, None) if !name.is_empty() && !bind.is_empty() => {
                Ok(NodePlan {
                    name: name.to_owned(),
                    bind: bind.to_owned(),
                    metrics_bind: metrics.map(str::to_owned),
                })
            }
            _ => bail!("--node wants NAME,BIND or NAME,BIND,METRICS_BIND, got `{s}`"),
        }
    }
}

/// `cargo xtask run --nodes N` (N > 1): checks, builds, then hands over to the supervisor.
pub fn run(n: u16, debug: bool, mut serve_args: Vec<String>) -> Result<()> {
    if !cfg!(unix) {
        bail!("--nodes needs a Unix system (signals are relayed by sh and setsid)");
    }
    if let Some(name) = take_flag(&mut serve_args, "--node-name") {
        bail!(
            "--nodes {n} names the nodes node1..node{n} itself; drop `--node-name {name}` from \
             the serve arguments"
        );
    }
    let env = |var: &str| std::env::var(var).ok().filter(|v| !v.trim().is_empty());
    let database_url = take_flag(&mut serve_args, "--database-url")
        .or_else(|| env("DATABASE_URL"))
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
    if !database_url.starts_with("postgres://") && !database_url.starts_with("postgresql://") {
        bail!(
            "--nodes {n} needs PostgreSQL, but the database is `{}`.\n\
             Several nodes share one world through one PostgreSQL database (an SQLite file \
             belongs to one process). Run one node (`cargo xtask run`), or point DATABASE_URL \
             at PostgreSQL, e.g.\n    DATABASE_URL={DEFAULT_DATABASE_URL} cargo xtask run --nodes {n}",
            redact(&database_url)
        );
    }
    let bind = take_flag(&mut serve_args, "--bind")
        .or_else(|| env("LIVEPET_BIND"))
        .unwrap_or_else(|| DEFAULT_BIND.to_owned());
    let metrics_bind =
        take_flag(&mut serve_args, "--metrics-bind").or_else(|| env("LIVEPET_METRICS_BIND"));
    let nodes = node_plans(n, &bind, metrics_bind.as_deref())?;
    check_ports_free(&nodes)?;
    if bench_sys::output(Command::new("sh").args(["-c", "command -v setsid"])).is_none() {
        bail!("`setsid` (util-linux) was not found: it keeps Ctrl-C away from the nodes so they can stop gracefully");
    }

    // NATS: the one named, else one already answering on the usual port, else our own.
    let nats_url = take_flag(&mut serve_args, "--nats-url").or_else(|| env("LIVEPET_NATS_URL"));
    let nats = match nats_url {
        Some(url) => {
            let addr = cluster::nats_addr(&url)
                .with_context(|| format!("`{url}` is not a nats://HOST:PORT URL"))?;
            if !cluster::nats_answers(&addr) {
                bail!("no NATS server answers at {url} (from --nats-url or LIVEPET_NATS_URL); start it, or unset LIVEPET_NATS_URL to have one started for this run");
            }
            step(format!("NATS: using {url}"));
            Nats::Use(url)
        }
        None if cluster::nats_answers(cluster::NATS_DEFAULT_ADDR) => {
            let url = format!("nats://{}", cluster::NATS_DEFAULT_ADDR);
            step(format!(
                "NATS: a nats-server already answers at {url}; the nodes use it"
            ));
            Nats::Use(url)
        }
        None => {
            let binary = cluster::nats_server_binary().with_context(|| {
                format!(
                    "no NATS server answers at {} and nats-server is not installed: {}",
                    cluster::NATS_DEFAULT_ADDR,
                    cluster::NATS_INSTALL_HINT
                )
            })?;
            step(format!(
                "NATS: nothing answers at {}; a nats-server of this run will start on a free port ({})",
                cluster::NATS_DEFAULT_ADDR,
                binary.display()
            ));
            Nats::Start(binary)
        }
    };
    ensure_database(&database_url)?;

    crate::browser::build_frontend()?;
    let profile = if debug { "debug" } else { "release" };
    step(format!(
        "building livepet ({profile}) once; {n} nodes will run target/{profile}/livepet"
    ));
    let mut build = proc::cargo();
    build.args(["build", "-p", "livepet-server", "--bin", "livepet"]);
    if !debug {
        build.arg("--release");
    }
    proc::run(&mut build)?;
    let livepet = proc::target_dir().join(profile).join("livepet");
    // Every node migrates at start, and on a fresh database nodes starting together race to
    // create the same tables (PostgreSQL: `duplicate key value violates unique constraint
    // "pg_type_typname_nsp_index"`), so the schema is brought up to date once, first.
    step("applying the database migrations once, before the nodes start together");
    proc::run(
        proc::command(&livepet)
            .arg("migrate")
            // Through the environment, so the printed command shows no password.
            .env("DATABASE_URL", &database_url),
    )?;
    if !has_flag(&serve_args, "--static-dir") {
        serve_args.splice(
            0..0,
            ["--static-dir".to_owned(), crate::browser::DIST.to_owned()],
        );
    }

    let mut sup: Vec<String> = vec![
        "cluster-supervise".into(),
        "--livepet".into(),
        livepet.display().to_string(),
        "--database-url".into(),
        database_url,
        "--log-dir".into(),
        proc::target_dir().join("cluster").display().to_string(),
    ];
    match nats {
        Nats::Use(url) => sup.extend(["--nats-url".into(), url]),
        Nats::Start(bin) => sup.extend(["--nats-server".into(), bin.display().to_string()]),
    }
    for node in &nodes {
        sup.extend(["--node".into(), node.to_arg()]);
    }
    sup.push("--".into());
    sup.extend(serve_args);
    step(format!(
        "starting {n} nodes ({} to {}); Ctrl-C stops them gracefully",
        nodes[0].bind,
        nodes[nodes.len() - 1].bind
    ));
    exec_front_shell(&sup)
}

enum Nats {
    Use(String),
    Start(PathBuf),
}

#[cfg(unix)]
fn exec_front_shell(supervise: &[String]) -> Result<()> {
    use std::os::unix::process::CommandExt as _;
    let me = std::env::current_exe().context("finding this program's path")?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(FRONT_SHELL).arg(&me).args(supervise);
    let err = cmd.exec();
    Err(err).context("could not start sh to supervise the nodes")
}

#[cfg(not(unix))]
fn exec_front_shell(_: &[String]) -> Result<()> {
    bail!("--nodes needs a Unix system")
}

/// Node i (from 1) listens on the port of `bind` plus i - 1, and so does its metrics
/// address when one is given. Port 0 stays 0: each node then picks a free port.
fn node_plans(n: u16, bind: &str, metrics_bind: Option<&str>) -> Result<Vec<NodePlan>> {
    let (host, port) = split_host_port(bind, "--bind")?;
    let metrics = metrics_bind
        .map(|m| split_host_port(m, "--metrics-bind"))
        .transpose()?;
    let nth = |port: u16, k: u16, what: &str| -> Result<u16> {
        if port == 0 {
            return Ok(0);
        }
        port.checked_add(k)
            .with_context(|| format!("{what}: port {port} + {k} is past 65535"))
    };
    let plans = (1..=n)
        .map(|i| {
            let k = i - 1;
            Ok(NodePlan {
                name: format!("node{i}"),
                bind: format!("{host}:{}", nth(port, k, "--bind")?),
                metrics_bind: match &metrics {
                    Some((h, p)) => Some(format!("{h}:{}", nth(*p, k, "--metrics-bind")?)),
                    None => None,
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut ports: Vec<u16> = plans
        .iter()
        .flat_map(|p| std::iter::once(&p.bind).chain(&p.metrics_bind))
        .filter_map(|a| split_host_port(a, "").ok().map(|(_, p)| p))
        .filter(|p| *p != 0)
        .collect();
    let count = ports.len();
    ports.sort_unstable();
    ports.dedup();
    if ports.len() != count {
        bail!(
            "the nodes' ports overlap: --bind {bind} and --metrics-bind {} give {n} consecutive ports each; put them at least {n} apart",
            metrics_bind.unwrap_or_default()
        );
    }
    Ok(plans)
}

/// `("127.0.0.1", 8080)` from `127.0.0.1:8080` (`[::1]:8080` keeps its brackets).
fn split_host_port<'a>(addr: &'a str, flag: &str) -> Result<(&'a str, u16)> {
    let (host, port) = addr
        .rsplit_once(':')
        .with_context(|| format!("{flag} wants HOST:PORT, got `{addr}`"))?;
    let port = port
        .parse()
        .with_context(|| format!("{flag}: bad port in `{addr}`"))?;
    Ok((host, port))
}

/// Fails early, with the port named, when a node's address is taken.
fn check_ports_free(nodes: &[NodePlan]) -> Result<()> {
    for node in nodes {
        for addr in std::iter::once(&node.bind).chain(&node.metrics_bind) {
            if addr.ends_with(":0") {
                continue;
            }
            if let Err(e) = std::net::TcpListener::bind(addr.as_str()) {
                bail!(
                    "{} cannot listen on {addr}: {e} (another LivePet still running?). Pick other ports with `cargo xtask run --nodes {} -- --bind 127.0.0.1:9000`",
                    node.name,
                    nodes.len()
                );
            }
        }
    }
    Ok(())
}

/// Removes every `--flag value` and `--flag=value` from `args`; the last value wins, as it
/// does for the server.
fn take_flag(args: &mut Vec<String>, flag: &str) -> Option<String> {
    let mut value = None;
    let mut kept = Vec::with_capacity(args.len());
    let mut it = std::mem::take(args).into_iter();
    while let Some(arg) = it.next() {
        if arg == flag {
            value = it.next();
        } else if let Some(v) = arg
            .strip_prefix(flag)
            .and_then(|rest| rest.strip_prefix('='))
        {
            value = Some(v.to_owned());
        } else {
            kept.push(arg);
        }
    }
    *args = kept;
    value
}

fn has_flag(args: &[String], flag: &str) -> bool {
    args.iter()
        .any(|a| a == flag || a.strip_prefix(flag).is_some_and(|r| r.starts_with('=')))
}

/// A URL with its password hidden, for messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => url.to_owned(),
    }
}

/// PostgreSQL answers and the database exists: created through the server's `postgres`
/// database when it is missing.
fn ensure_database(url: &str) -> Result<()> {
    let shown = redact(url);
    let name =
        pgcheck::database_name(url).with_context(|| format!("`{shown}` names no database"))?;
    step(format!("PostgreSQL: database `{name}` at {shown}"));
    let (host, port) = pgcheck::host_port(url)?;
    let unreachable = || {
        format!(
            "PostgreSQL does not answer at {host}:{port}: start it (`sudo apt-get install -y postgresql`) or point DATABASE_URL at one"
        )
    };
    if bench_sys::output(Command::new("psql").arg("--version")).is_none() {
        pgcheck::check_reachable(url).with_context(unreachable)?;
        println!(
            "    psql is not installed, so database `{name}` could not be checked or created; the nodes fail at start if it is missing"
        );
        return Ok(());
    }
    if bench_sys::psql(url, "SELECT 1").is_ok() {
        return Ok(());
    }
    let admin = pgcheck::with_database(url, "postgres")?;
    pgcheck::check_reachable(&admin).with_context(unreachable)?;
    let literal = name.replace('\'', "''");
    let exists = bench_sys::psql_rows(
        &admin,
        &format!("SELECT 1 FROM pg_database WHERE datname = '{literal}'"),
    )?;
    if !exists.is_empty() {
        // It is there, so the first attempt failed for another reason: say which.
        bench_sys::psql(url, "SELECT 1")
            .with_context(|| format!("database `{name}` exists but cannot be used"))?;
        return Ok(());
    }
    let ident = name.replace('"', "\"\"");
    bench_sys::psql(&admin, &format!("CREATE DATABASE \"{ident}\""))
        .with_context(|| format!("creating database `{name}`"))?;
    println!("    created database `{name}` (the nodes create its tables at start)");
    Ok(())
}

/// The hidden `cluster-supervise` subcommand: what the shell of `run --nodes N` starts.
#[derive(Debug, Args)]
pub struct SuperviseArgs {
    /// The `livepet` binary every node runs.
    #[arg(long)]
    livepet: PathBuf,
    /// The PostgreSQL database the nodes share.
    #[arg(long)]
    database_url: String,
    /// A NATS server to connect the nodes to.
    #[arg(
        long,
        conflicts_with = "nats_server",
        required_unless_present = "nats_server"
    )]
    nats_url: Option<String>,
    /// A nats-server binary to start on a free port instead (stopped after the nodes).
    #[arg(long)]
    nats_server: Option<PathBuf>,
    /// One node: NAME,BIND or NAME,BIND,METRICS_BIND (repeat for each).
    #[arg(
        long = "node",
        required = true,
        value_name = "NAME,BIND[,METRICS_BIND]"
    )]
    nodes: Vec<String>,
    /// Where each process's log is also written.
    #[arg(long)]
    log_dir: PathBuf,
    /// Passed to every node's `livepet serve`.
    #[arg(last = true)]
    serve_args: Vec<String>,
}

/// What the front shell says on the supervisor's stdin.
enum Control {
    /// A signal reached the shell: stop (a second one: kill).
    Stop,
    /// The shell is gone.
    Closed,
}

fn control_channel() -> Receiver<Control> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        loop {
            line.clear();
            match stdin.lock().read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Control::Closed);
                    return;
                }
                Ok(_) => {
                    if tx.send(Control::Stop).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// A `==> ` line that never panics: the terminal may be gone while the nodes stop.
fn say(what: impl Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "==> {what}");
    let _ = out.flush();
}

struct Node {
    plan: NodePlan,
    proc: Proc,
    /// `host:port` to ask for /readyz: from the plan, or from its `listening on` line when
    /// it was given port 0.
    addr: Option<String>,
    ready: bool,
    last: String,
    exit: Option<ExitStatus>,
}

impl Node {
    fn url(&self) -> String {
        format!(
            "http://{}",
            self.addr.as_deref().unwrap_or("<not listening yet>")
        )
    }
}

/// The loopback address a browser on this machine uses for `bind` (a wildcard host is
/// shown as loopback, as `cargo xtask run` does).
fn reachable(bind: &str) -> Option<String> {
    let (host, port) = bind.rsplit_once(':')?;
    if port == "0" {
        return None;
    }
    let host = match host {
        "" | "0.0.0.0" => "127.0.0.1",
        "[::]" => "[::1]",
        other => other,
    };
    Some(format!("{host}:{port}"))
}

struct Supervisor {
    nodes: Vec<Node>,
    nats: Option<Proc>,
    nats_url: String,
    control: Receiver<Control>,
    control_open: bool,
    width: usize,
}

/// Where the supervisor stands after starting the nodes, or why it left its loop.
enum Flow {
    Ready,
    StopRequested,
    AllExited,
}

pub fn supervise(args: SuperviseArgs) -> Result<()> {
    let control = control_channel();
    std::fs::create_dir_all(&args.log_dir)
        .with_context(|| format!("creating {}", args.log_dir.display()))?;
    let plans = args
        .nodes
        .iter()
        .map(|s| NodePlan::from_arg(s))
        .collect::<Result<Vec<_>>>()?;
    let (nats, nats_url) = match (&args.nats_url, &args.nats_server) {
        (Some(url), _) => (None, url.clone()),
        (None, Some(binary)) => {
            let n = cluster::start_nats(binary, &args.log_dir.join("nats.log"))?;
            say(format!(
                "nats-server of this run listening at {} (log {})",
                n.url,
                args.log_dir.join("nats.log").display()
            ));
            (Some(n.proc), n.url)
        }
        (None, None) => bail!("give --nats-url or --nats-server"),
    };
    let width = plans.iter().map(|p| p.name.len()).max().unwrap_or(5).max(4);
    let mut sup = Supervisor {
        nodes: Vec::new(),
        nats,
        nats_url,
        control,
        control_open: true,
        width,
    };
    let result = sup.start(&args, plans).and_then(|flow| match flow {
        Flow::Ready => sup.run(),
        other => Ok(other),
    });
    let stopped = sup.stop();
    match (result, stopped) {
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(e),
        (Ok(Flow::AllExited), Ok(())) => bail!("every node has exited (see their logs above)"),
        (Ok(Flow::Ready | Flow::StopRequested), Ok(())) => Ok(()),
    }
}

impl Supervisor {
    fn start(&mut self, args: &SuperviseArgs, plans: Vec<NodePlan>) -> Result<Flow> {
        for plan in plans {
            let mut cmd = Command::new(&args.livepet);
            cmd.arg("serve")
                .args(["--bind", &plan.bind])
                .args(["--database-url", &args.database_url])
                .args(["--nats-url", &self.nats_url])
                .args(["--node-name", &plan.name]);
            if let Some(m) = &plan.metrics_bind {
                cmd.args(["--metrics-bind", m]);
            }
            cmd.args(&args.serve_args).current_dir(proc::root());
            let shown =
                proc::display(&cmd).replace(&args.database_url, &redact(&args.database_url));
            println!("    $ {shown}");
            let log = args.log_dir.join(format!("{}.log", plan.name));
            let proc = Proc::spawn(&plan.name, &cmd, &log)?;
            self.nodes.push(Node {
                addr: reachable(&plan.bind),
                plan,
                proc,
                ready: false,
                last: "not answering yet".into(),
                exit: None,
            });
        }
        self.wait_ready()
    }

    /// Prints what the processes wrote, each line after its node's name, and notes the
    /// ones that exited.
    fn pump(&mut self) {
        let width = self.width;
        let mut out = std::io::stdout().lock();
        if let Some(nats) = &mut self.nats {
            for line in nats.drain() {
                let _ = writeln!(out, "{:<width$} | {line}", "nats");
            }
        }
        for node in &mut self.nodes {
            for line in node.proc.drain() {
                if node.addr.is_none() {
                    if let Some((_, a)) = line.split_once("listening on http://") {
                        node.addr = reachable(a.trim());
                    }
                }
                let _ = writeln!(out, "{:<width$} | {line}", node.plan.name);
            }
        }
        let _ = out.flush();
        drop(out);
        for node in &mut self.nodes {
            if node.exit.is_none() {
                if let Ok(Some(status)) = node.proc.child.try_wait() {
                    node.exit = Some(status);
                    say(format!("{} exited ({status})", node.plan.name));
                }
            }
        }
    }

    /// Waits up to `timeout` for a word from the front shell.
    fn control(&mut self, timeout: Duration) -> Option<Control> {
        if !self.control_open {
            // Polling interval of the caller's loop once nobody can write to us any more.
            std::thread::sleep(timeout);
            return None;
        }
        match self.control.recv_timeout(timeout) {
            Ok(Control::Closed) | Err(RecvTimeoutError::Disconnected) => {
                self.control_open = false;
                Some(Control::Closed)
            }
            Ok(Control::Stop) => Some(Control::Stop),
            Err(RecvTimeoutError::Timeout) => None,
        }
    }

    fn wait_ready(&mut self) -> Result<Flow> {
        let began = Instant::now();
        let mut next_poll = Instant::now();
        let mut next_progress = Instant::now() + PROGRESS_EVERY;
        loop {
            self.pump();
            if let Some(node) = self.nodes.iter().find(|n| n.exit.is_some()) {
                bail!(
                    "{} exited before it was ready ({}); its log: {}",
                    node.plan.name,
                    node.exit.map(|s| s.to_string()).unwrap_or_default(),
                    node.proc.log.display()
                );
            }
            if Instant::now() >= next_poll {
                next_poll = Instant::now() + Duration::from_millis(500);
                for node in self.nodes.iter_mut().filter(|n| !n.ready) {
                    let Some(addr) = node.addr.clone() else {
                        continue;
                    };
                    match cluster::readyz(&addr) {
                        Ok(r) if r.ready() => {
                            node.ready = true;
                            say(format!(
                                "{} ready after {:.1} s ({}): {}  (readiness {}/readyz, metrics {})",
                                node.plan.name,
                                began.elapsed().as_secs_f64(),
                                r.describe(),
                                node.url(),
                                node.url(),
                                metrics_url(node)
                            ));
                        }
                        Ok(r) => node.last = r.describe(),
                        Err(_) => node.last = "not answering yet".into(),
                    }
                }
            }
            if self.nodes.iter().all(|n| n.ready) {
                self.banner();
                return Ok(Flow::Ready);
            }
            if Instant::now() >= next_progress {
                next_progress = Instant::now() + PROGRESS_EVERY;
                say(format!(
                    "waiting for /readyz ({:.0} s): {}",
                    began.elapsed().as_secs_f64(),
                    self.states()
                ));
            }
            if began.elapsed() > READY_TIMEOUT {
                bail!(
                    "not every node was ready within {} s: {}",
                    READY_TIMEOUT.as_secs(),
                    self.states()
                );
            }
            if self.control(Duration::from_millis(100)).is_some() {
                say("stop requested before every node was ready");
                return Ok(Flow::StopRequested);
            }
        }
    }

    fn states(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                format!(
                    "{} {}",
                    n.plan.name,
                    if n.ready { "ready" } else { n.last.as_str() }
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn banner(&self) {
        let width = self.width;
        let mut lines = vec![format!(
            "one world on {} nodes; open any of them:",
            self.nodes.len()
        )];
        for n in &self.nodes {
            lines.push(format!(
                "      {:<width$}  {}   readiness {}/readyz   metrics {}",
                n.plan.name,
                n.url(),
                n.url(),
                metrics_url(n)
            ));
        }
        lines.push(format!(
            "    NATS {} ({}); logs also in {}",
            self.nats_url,
            if self.nats.is_some() {
                "started for this run, stopped last"
            } else {
                "already running, left alone"
            },
            self.nodes
                .first()
                .and_then(|n| n.proc.log.parent())
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ));
        lines.push(
            "    Ctrl-C stops every node gracefully (each hands its pets off and flushes them); a second Ctrl-C kills them"
                .into(),
        );
        say(lines.join("\n"));
    }

    /// Until a stop request or every node has exited; a node that dies is reported and the
    /// others carry on (its pets move to them: that is what several nodes are for).
    fn run(&mut self) -> Result<Flow> {
        loop {
            self.pump();
            if let Some(nats) = &mut self.nats {
                if let Ok(Some(status)) = nats.child.try_wait() {
                    say(format!("nats-server exited ({status}): the nodes can no longer reach each other; stopping them"));
                    self.nats = None;
                    return Ok(Flow::StopRequested);
                }
            }
            if self.nodes.iter().all(|n| n.exit.is_some()) {
                return Ok(Flow::AllExited);
            }
            if self.control(Duration::from_millis(100)).is_some() {
                return Ok(Flow::StopRequested);
            }
        }
    }

    /// SIGTERM to every running node at once, then waits for each (a second stop request or
    /// the timeout kills what is left), then stops our nats-server.
    fn stop(&mut self) -> Result<()> {
        let running: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.exit.is_none())
            .map(|n| n.plan.name.clone())
            .collect();
        if !running.is_empty() {
            say(format!(
                "stopping {}: SIGTERM to each; every node hands its shards off and flushes its pets before it exits",
                running.join(", ")
            ));
            for node in self.nodes.iter().filter(|n| n.exit.is_none()) {
                if let Err(e) = node.proc.signal("TERM") {
                    say(format!("{e:#}"));
                }
            }
        }
        let began = Instant::now();
        let mut killed = false;
        loop {
            self.pump();
            if self.nodes.iter().all(|n| n.exit.is_some()) {
                break;
            }
            let why = match self.control(Duration::from_millis(100)) {
                Some(Control::Stop) => Some("a second stop request"),
                _ if began.elapsed() > STOP_TIMEOUT => Some("the stop timeout"),
                _ => None,
            };
            if let (Some(why), false) = (why, killed) {
                killed = true;
                say(format!(
                    "{why}: killing the nodes still running; up to one persist interval of their pets' ticking is lost"
                ));
                for node in self.nodes.iter_mut().filter(|n| n.exit.is_none()) {
                    node.proc.kill();
                }
            }
        }
        if let Some(mut nats) = self.nats.take() {
            say("stopping the nats-server of this run");
            let _ = nats.signal("TERM");
            let deadline = Instant::now() + Duration::from_secs(10);
            while !matches!(nats.child.try_wait(), Ok(Some(_))) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            nats.kill();
        }
        self.pump();
        let bad: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| !n.exit.is_some_and(|s| s.success()))
            .map(|n| {
                format!(
                    "{} ({}; log {})",
                    n.plan.name,
                    n.exit.map(|s| s.to_string()).unwrap_or_default(),
                    n.proc.log.display()
                )
            })
            .collect();
        if bad.is_empty() {
            say(format!(
                "stopped: every node exited 0 in {:.1} s",
                began.elapsed().as_secs_f64()
            ));
            Ok(())
        } else {
            bail!("not every node stopped cleanly: {}", bad.join(", "))
        }
    }
}

fn metrics_url(node: &Node) -> String {
    match node.plan.metrics_bind.as_deref().and_then(reachable) {
        Some(addr) => format!("http://{addr}/metrics"),
        None => format!("{}/metrics", node.url()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn takes_a_flag_in_both_spellings_and_keeps_the_rest() {
        let mut a = args(&[
            "--tick-ms",
            "5",
            "--bind",
            "127.0.0.1:1",
            "--bind=127.0.0.1:2",
            "--x",
        ]);
        assert_eq!(take_flag(&mut a, "--bind").as_deref(), Some("127.0.0.1:2"));
        assert_eq!(a, args(&["--tick-ms", "5", "--x"]));
        assert_eq!(take_flag(&mut a, "--bind"), None);
        let mut b = args(&["--binder", "x"]);
        assert_eq!(take_flag(&mut b, "--bind"), None);
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn nodes_get_consecutive_ports() {
        let plans = node_plans(3, "0.0.0.0:9000", Some("127.0.0.1:9100")).expect("plans");
        assert_eq!(
            plans
                .iter()
                .map(|p| (p.name.as_str(), p.bind.as_str()))
                .collect::<Vec<_>>(),
            vec![
                ("node1", "0.0.0.0:9000"),
                ("node2", "0.0.0.0:9001"),
                ("node3", "0.0.0.0:9002")
            ]
        );
        assert_eq!(plans[2].metrics_bind.as_deref(), Some("127.0.0.1:9102"));
        assert_eq!(reachable(&plans[0].bind).as_deref(), Some("127.0.0.1:9000"));
        let free = node_plans(2, "127.0.0.1:0", None).expect("plans");
        assert!(free.iter().all(|p| p.bind == "127.0.0.1:0"));
        assert_eq!(reachable("127.0.0.1:0"), None);
        assert!(node_plans(3, "127.0.0.1:8080", Some("127.0.0.1:8081")).is_err());
        assert!(node_plans(2, "127.0.0.1:65535", None).is_err());
        assert!(node_plans(2, "localhost", None).is_err());
    }

    #[test]
    fn the_supervisor_reads_back_what_the_run_writes() {
        for plan in node_plans(2, "[::]:8080", Some("127.0.0.1:9100")).expect("plans") {
            assert_eq!(NodePlan::from_arg(&plan.to_arg()).expect("parses"), plan);
        }
        assert!(NodePlan::from_arg("node1").is_err());
        assert!(NodePlan::from_arg("a,b,c,d").is_err());
    }

    #[test]
    fn hides_passwords() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db?x=1"),
            "postgres://u:***@h:5432/db?x=1"
        );
        assert_eq!(redact(DEFAULT_DATABASE_URL), DEFAULT_DATABASE_URL);
    }
}
