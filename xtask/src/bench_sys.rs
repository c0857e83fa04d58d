//! What `cargo xtask bench` needs from the system: child processes with their output logged
//! and scanned, CPU and resident memory from /proc, a tiny HTTP/1.1 client for /metrics and
//! WebDriver, the machine's description, and scratch PostgreSQL databases through psql.

use anyhow::{bail, Context as _, Result};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A child process whose stdout and stderr go to a log file and, line by line, to us.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub began: Instant,
    lines: Receiver<String>,
    pub log: PathBuf,
    /// Every line seen so far (for error messages).
    seen: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts `cmd` with raised open-files limit (soft = hard, as `ulimit -n` allows).
    pub fn spawn(name: &str, cmd: &Command, log: &Path) -> Result<Proc> {
        // Through sh so the limit is raised before exec: thousands of WebSockets need more
        // than a default 1024 descriptors, whatever the program does about it itself.
        Proc::spawn_with_limit(name, cmd, log, r#"ulimit -n "$(ulimit -Hn)" 2>/dev/null"#)
    }

    /// Starts `cmd` after the shell command `limit` (e.g. `ulimit -Sn 1024`) set its
    /// open-files limit.
    pub fn spawn_with_limit(name: &str, cmd: &Command, log: &Path, limit: &str) -> Result<Proc> {
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg(format!(r#"{limit}; exec "$0" "$@""#))
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => sh.env(k, v),
                None => sh.env_remove(k),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            sh.current_dir(dir);
        }
        let began = Instant::now();
        let mut child = sh
            .spawn()
            .with_context(|| format!("starting {}", crate::proc::display(cmd)))?;
        let file = Arc::new(Mutex::new(
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?,
        ));
        let (tx, rx) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().context("stdout")?);
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().context("stderr")?);
        for stream in [out, err] {
            let (tx, file, seen) = (tx.clone(), file.clone(), seen.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                    if let Ok(mut f) = file.lock() {
                        let _ = writeln!(f, "{line}");
                    }
                    if let Ok(mut s) = seen.lock() {
                        if s.len() < 10_000 {
                            s.push(line.clone());
                        }
                    }
                    let _ = tx.send(line);
                }
            });
        }
        Ok(Proc {
            name: name.to_owned(),
            child,
            began,
            lines: rx,
            log: log.to_path_buf(),
            seen,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a line for which `f` returns something; fails on timeout or exit.
    pub fn wait_for<T>(
        &mut self,
        timeout: Duration,
        mut f: impl FnMut(&str) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(line) => {
                    if let Some(v) = f(&line) {
                        return Ok(v);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(status) = self.child.try_wait()? {
                        bail!("{} exited ({status}); {}", self.name, self.tail());
                    }
                    if Instant::now() >= deadline {
                        bail!(
                            "{} did not say it within {timeout:?}; {}",
                            self.name,
                            self.tail()
                        );
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait()?;
                    bail!("{} exited ({status}); {}", self.name, self.tail());
                }
            }
        }
    }

    /// Drains lines already received without blocking (keeps the channel small).
    pub fn drain(&mut self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// After the process exited: the lines still on their way, until both output streams
    /// have ended (their reader threads hang up) or `within` has passed.
    pub fn drain_to_end(&mut self, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => out.push(line),
                Err(_) => return out,
            }
        }
    }

    /// The last lines of output, for error messages.
    pub fn tail(&self) -> String {
        let seen = self.seen.lock().map(|s| s.clone()).unwrap_or_default();
        let start = seen.len().saturating_sub(8);
        format!(
            "last output (full log {}):\n    {}",
            self.log.display(),
            seen[start..].join("\n    ")
        )
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}); {}", self.name, self.tail());
        }
        Ok(())
    }

    /// SIGTERM, then waits until the process exits; past `timeout` it is killed. Returns the
    /// seconds from the signal to the exit, the exit code (None when killed by a signal or
    /// after the timeout) and every line it printed meanwhile.
    pub fn terminate(&mut self, timeout: Duration) -> Result<Stopped> {
        let pid = self.pid().to_string();
        let t = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .context("running kill")?;
        if !sent.success() {
            bail!("kill -TERM {pid} failed ({sent})");
        }
        let mut lines = Vec::new();
        loop {
            lines.extend(self.drain());
            if let Some(status) = self.child.try_wait()? {
                let seconds = t.elapsed().as_secs_f64();
                lines.extend(self.drain_to_end(Duration::from_secs(2)));
                return Ok(Stopped {
                    seconds,
                    exit_code: status.code(),
                    timed_out: false,
                    lines,
                });
            }
            if t.elapsed() > timeout {
                self.kill();
                lines.extend(self.drain());
                return Ok(Stopped {
                    seconds: t.elapsed().as_secs_f64(),
                    exit_code: None,
                    timed_out: true,
                    lines,
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends `signal` (a name `kill` knows: TERM, KILL, STOP, …) without waiting.
    pub fn signal(&self, signal: &str) -> Result<()> {
        let pid = self.pid().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .stderr(Stdio::null())
            .status()
            .context("running kill")?;
        if !sent.success() {
            bail!("kill -{signal} {pid} ({}) failed ({sent})", self.name);
        }
        Ok(())
    }

    /// SIGKILL (the database is thrown away anyway).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a process ended after SIGTERM.
#[derive(Debug, Clone, Default)]
pub struct Stopped {
    pub seconds: f64,
    pub exit_code: Option<i32>,
    /// It had not exited by the deadline and was killed.
    pub timed_out: bool,
    pub lines: Vec<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Clock ticks per second for /proc times.
fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU seconds (user + system) a process has used so far, from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unexpected /proc stat format")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> Result<f64> {
        f.get(i)
            .and_then(|s| s.parse::<f64>().ok())
            .context("unexpected /proc stat format")
    };
    Ok((field(11)? + field(12)?) / clk_tck())
}

/// Resident memory of a process in bytes, from /proc/PID/status (VmRSS).
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .context("no VmRSS in /proc status")
}

/// The "Max open files" soft and hard limits of a running process, from /proc/PID/limits
/// (as written there: a number or "unlimited").
pub fn open_files_limit(pid: u32) -> Result<(String, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .with_context(|| format!("reading /proc/{pid}/limits"))?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .context("no `Max open files` in /proc limits")?;
    let mut it = line.split_whitespace();
    match (it.next(), it.next()) {
        (Some(soft), Some(hard)) => Ok((soft.to_owned(), hard.to_owned())),
        _ => bail!("unexpected `Max open files` line: {line}"),
    }
}

/// This process's hard open-files limit (what its children may raise theirs to).
pub fn hard_open_files() -> Option<u64> {
    output(Command::new("sh").args(["-c", "ulimit -Hn"]))?
        .parse()
        .ok()
}

/// CPU use of a process over a wall-clock interval, sampled from /proc.
pub struct CpuMeter {
    pid: u32,
    cpu0: f64,
    t0: Instant,
}

impl CpuMeter {
    pub fn start(pid: u32) -> Result<CpuMeter> {
        Ok(CpuMeter {
            pid,
            cpu0: cpu_seconds(pid)?,
            t0: Instant::now(),
        })
    }

    /// Percent of one core since `start`.
    pub fn percent(&self) -> Result<f64> {
        let cpu = cpu_seconds(self.pid)? - self.cpu0;
        Ok(100.0 * cpu / self.t0.elapsed().as_secs_f64().max(1e-9))
    }
}

/// One HTTP/1.1 request with `Connection: close`; returns (status, body).
pub fn http(method: &str, addr: &str, path: &str, body: Option<&str>) -> Result<(u16, String)> {
    http_within(method, addr, path, body, Duration::from_secs(60))
}

/// [`http`], giving up when the server is silent for `timeout`: a node being polled for
/// readiness or metrics may be paused or busy, and the poll must keep its own deadline.
pub fn http_within(
    method: &str,
    addr: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    // Read the head, then exactly Content-Length bytes when given (some servers, like
    // chromedriver, keep the connection open despite `Connection: close`), else to EOF.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            bail!("the connection closed before the HTTP head ended");
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no HTTP status")?;
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let mut body = raw[head_end + 4..].to_vec();
    if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while body.len() < len {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&buf[..n]);
        }
    } else {
        s.read_to_end(&mut body)?;
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    let chunked = header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let body = if chunked { dechunk(&body) } else { body };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A scrape of the server's /metrics.
pub struct Metrics(String);

impl Metrics {
    pub fn scrape(addr: &str) -> Result<Metrics> {
        let (status, body) = http("GET", addr, "/metrics", None)?;
        if status != 200 {
            bail!("GET /metrics answered {status}");
        }
        Ok(Metrics(body))
    }

    /// The value of an unlabelled metric.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(' ')?;
            rest.trim().parse().ok()
        })
    }

    pub fn need(&self, name: &str) -> Result<f64> {
        self.get(name)
            .with_context(|| format!("/metrics has no `{name}`"))
    }
}

/// The machine, for the report's header.
pub struct Machine {
    pub cores: usize,
    pub memory_bytes: u64,
    pub cpu_model: String,
    pub kernel: String,
    pub load_average: String,
}

impl Machine {
    pub fn describe() -> Machine {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_bytes = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024;
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|v| v.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes,
            cpu_model,
            kernel: output(Command::new("uname").arg("-r")).unwrap_or_default(),
            load_average: load_average(),
        }
    }
}

/// /proc/loadavg's first three fields: how busy the machine was.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A command's trimmed stdout, if it ran and succeeded.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A PostgreSQL database made for one measure and dropped afterwards.
pub struct PgDb {
    admin_url: String,
    name: String,
    pub url: String,
}

impl PgDb {
    /// Creates a fresh database on the server of `admin_url` (any database on it).
    pub fn create(admin_url: &str, tag: &str) -> Result<PgDb> {
        let name = format!("livepet_bench_{}_{tag}", std::process::id());
        psql(admin_url, &format!("DROP DATABASE IF EXISTS {name}"))?;
        psql(admin_url, &format!("CREATE DATABASE {name}"))?;
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .context("the PostgreSQL URL has no database part")?;
        Ok(PgDb {
            admin_url: admin_url.to_owned(),
            url: format!("{base}/{name}"),
            name,
        })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Runs one query through psql and returns its rows, one line each, fields separated by a
/// space (unaligned, no header). The SQL goes on stdin: a list of ids can outgrow the
/// 128 KiB Linux allows a single argument.
pub fn psql_rows(url: &str, sql: &str) -> Result<Vec<String>> {
    let mut child = Command::new("psql")
        .args([
            "-X",
            "-w",
            "-q",
            "-A",
            "-t",
            "-F",
            " ",
            "-v",
            "ON_ERROR_STOP=1",
            url,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running psql (is the PostgreSQL client installed?)")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(sql.as_bytes())
            .context("writing the query to psql")?;
    }
    let out = child.wait_with_output().context("waiting for psql")?;
    if !out.status.success() {
        bail!(
            "psql `{}` failed: {}",
            sql.chars().take(200).collect::<String>(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

pub fn psql(url: &str, sql: &str) -> Result<()> {
    let out = Command::new("psql")
        .args(["-X", "-w", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql, url])
        .stdin(Stdio::null())
        .output()
        .context("running psql (is the PostgreSQL client installed?)")?;
    if !out.status.success() {
        bail!(
            "psql `{sql}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
