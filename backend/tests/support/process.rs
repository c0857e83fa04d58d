//! The real `livepet` binary in a child process, shared by the server tests and the browser
//! tests: started on port 0 (or on the port an earlier run had, to come back at the same
//! address), its real address read from its "listening on" log line, its log kept for waiting
//! on and for failure messages, signals, and its exit.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// What the server logs once it accepts connections, followed by its real address.
const LISTENING: &str = "listening on http://";

/// How long a start may take: a debug build on a busy 2-core CI box is slow.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// `livepet` with an info-level log and without the caller's `DATABASE_URL`.
pub fn livepet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_livepet"));
    c.env("RUST_LOG", "info").env_remove("DATABASE_URL");
    c
}

/// A running `livepet serve`; killed when dropped.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    /// `http://<addr>`.
    pub base: String,
    log: Arc<Mutex<Vec<String>>>,
    lines: mpsc::UnboundedReceiver<String>,
}

impl ServerProcess {
    /// Starts `livepet serve` on a port the OS picks, against `database_url`, with `extra`
    /// flags; returns once it listens.
    pub async fn start(database_url: &str, extra: &[&str]) -> ServerProcess {
        ServerProcess::start_on(0, database_url, extra).await
    }

    /// Like [`start`](Self::start), on `port`: a restart comes back at the address the
    /// clients (a browser) already use.
    pub async fn start_on(port: u16, database_url: &str, extra: &[&str]) -> ServerProcess {
        ServerProcess::start_with(livepet(), port, database_url, extra).await
    }

    /// Like [`start`](Self::start), run by `sh` after the shell commands `setup` (e.g.
    /// `ulimit -Sn 1024`), as a service manager or a shell would start it.
    #[allow(dead_code)] // only the server tests start it this way
    pub async fn start_after(setup: &str, database_url: &str, extra: &[&str]) -> ServerProcess {
        let mut sh = Command::new("sh");
        sh.args(["-c", &format!("{setup}; exec \"$0\" \"$@\"")])
            .arg(env!("CARGO_BIN_EXE_livepet"))
            .env("RUST_LOG", "info")
            .env_remove("DATABASE_URL");
        ServerProcess::start_with(sh, 0, database_url, extra).await
    }

    /// Starts `livepet` (or a shell that execs it) as `serve` on `port`.
    async fn start_with(
        mut cmd: Command,
        port: u16,
        database_url: &str,
        extra: &[&str],
    ) -> ServerProcess {
        let bind = format!("127.0.0.1:{port}");
        let mut child = cmd
            .args(["serve", "--bind", &bind, "--database-url", database_url])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = mpsc::unbounded_channel();
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Kept before it is announced, so a failure message shows the line waited on.
                keep.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        // The address is what was asked for until the log says which port it really is.
        let mut server = ServerProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            base: String::new(),
            log,
            lines,
        };
        let line = server.wait_line(LISTENING, START_TIMEOUT).await;
        let (_, addr) = line.split_once(LISTENING).unwrap();
        server.addr = addr.trim().parse().unwrap();
        server.base = format!("http://{}", server.addr);
        server
    }

    /// Waits for the next log line containing `needle` (the event itself, not a sleep).
    pub async fn wait_line(&mut self, needle: &str, timeout: Duration) -> String {
        let found = tokio::time::timeout(timeout, async {
            while let Some(line) = self.lines.recv().await {
                if line.contains(needle) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            Ok(None) => panic!(
                "the server exited without logging `{needle}`; log:\n{}",
                self.log()
            ),
            Err(_) => panic!(
                "no log line with `{needle}` within {timeout:?}; log so far:\n{}",
                self.log()
            ),
        }
    }

    /// Waits until the server has logged a line containing `needle`, whenever it did: also
    /// a line logged before an earlier wait passed it by (startup lines can come before or
    /// after "listening on").
    #[allow(dead_code)] // the browser tests include this file but only wait for later lines
    pub async fn wait_logged(&mut self, needle: &str, timeout: Duration) -> String {
        let earlier = self
            .log
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(needle))
            .cloned();
        match earlier {
            Some(line) => line,
            None => self.wait_line(needle, timeout).await,
        }
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The process id (the shell of [`start_after`](Self::start_after) execs the server, so
    /// it is the server's too).
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `KILL`).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        // Nothing else holds the server's stderr, so its log ends when the process does.
        let ended = tokio::time::timeout(timeout, async {
            while self.lines.recv().await.is_some() {}
        })
        .await;
        assert!(
            ended.is_ok(),
            "server did not exit within {timeout:?}; log:\n{}",
            self.log()
        );
        self.child.wait().unwrap()
    }

    /// A graceful stop: SIGTERM (the server closes every socket and flushes every pet), then
    /// a successful exit within 30 s.
    pub async fn stop(&mut self) {
        self.signal("TERM");
        let status = self.wait_exit(Duration::from_secs(30)).await;
        assert!(
            status.success(),
            "exit status {status}; log:\n{}",
            self.log()
        );
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
