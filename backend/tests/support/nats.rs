//! A real `nats-server` of the test's own, on a port it picks (`-p -1`), read from its log;
//! killed when dropped. Never the machine's shared one on 4222.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// What nats-server logs once it accepts clients, followed by `HOST:PORT`.
const LISTENING: &str = "Listening for client connections on ";

/// How long nats-server may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `nats-server -a 127.0.0.1 -p -1`.
pub struct NatsServer {
    child: Child,
    pub port: u16,
    /// `nats://127.0.0.1:<port>`.
    pub url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl NatsServer {
    /// The binary: `NATS_SERVER` if set, else Debian's `/usr/sbin/nats-server`.
    pub fn binary() -> PathBuf {
        std::env::var_os("NATS_SERVER")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/sbin/nats-server"))
    }

    /// Starts it and returns once it listens; panics (with its log) if it does not within
    /// [`START_TIMEOUT`].
    pub fn start() -> NatsServer {
        let mut child = Command::new(NatsServer::binary())
            .args(["-a", "127.0.0.1", "-p", "-1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", NatsServer::binary().display()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        // It logs to stderr; stdout is read too so that neither pipe can fill up.
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let keep = log.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    keep.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        drop(tx);
        let deadline = Instant::now() + START_TIMEOUT;
        let port = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some((_, hostport)) = line.split_once(LISTENING) {
                        let port = hostport
                            .trim()
                            .rsplit_once(':')
                            .and_then(|(_, p)| p.parse::<u16>().ok())
                            .unwrap_or_else(|| panic!("no port in nats-server's line `{line}`"));
                        break port;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "nats-server did not log `{LISTENING}` within {START_TIMEOUT:?}; log:\n{}",
                        log.lock().unwrap().join("\n")
                    );
                }
            }
        };
        NatsServer {
            child,
            port,
            url: format!("nats://127.0.0.1:{port}"),
            log,
        }
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
