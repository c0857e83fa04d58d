//! A real SMTP server for tests, in this process: the protocol engine of the `mailin` crate
//! (the SMTP state machine behind mailin-embedded) on a TCP listener on a free port, keeping
//! every mail it accepts for the test to read, parsed; and reading the `.eml` files a server
//! without SMTP writes. Nothing here knows LivePet, so any test binary can include it.
//!
//! ```ignore
//! let smtp = SmtpReceiver::start();
//! let app = TestApp::sqlite_with(|a| a.smtp_url = Some(smtp.url().parse().unwrap())).await;
//! // … something that mails alice@example.com …
//! let mail = smtp.wait_for("alice@example.com", Duration::from_secs(10)).await;
//! let link = mail.link_containing("/reset-password/").unwrap();
//! ```

use mailin::{Action, AuthMechanism, Handler, Response, SessionBuilder};
use mailparse::MailHeaderMap as _;
use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::Notify;

/// A mail as the receiver got it (or as read from an `.eml` file).
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// `MAIL FROM` (empty for a file).
    pub envelope_from: String,
    /// `RCPT TO`, one per recipient (empty for a file).
    pub envelope_to: Vec<String>,
    /// The user name the client logged in with, if it did.
    pub login: Option<String>,
    /// The `From:` header, decoded, e.g. `LivePet <livepet@localhost>`.
    pub from: String,
    /// The `To:` header, decoded.
    pub to: String,
    pub subject: String,
    /// The body, decoded, with `\n` line ends.
    pub text: String,
    /// The message as it came over the wire or sat in the file.
    pub raw: String,
    /// The `.eml` file it was read from (`None` for a mail received over SMTP).
    pub file: Option<PathBuf>,
}

impl ReceivedMail {
    /// Parses an RFC 5322 message (the envelope is left empty).
    pub fn parse(raw: &[u8]) -> ReceivedMail {
        let parsed = mailparse::parse_mail(raw).expect("a parsable mail");
        let header = |name: &str| parsed.headers.get_first_value(name).unwrap_or_default();
        ReceivedMail {
            envelope_from: String::new(),
            envelope_to: Vec::new(),
            login: None,
            from: header("From"),
            to: header("To"),
            subject: header("Subject"),
            text: parsed
                .get_body()
                .expect("a decodable body")
                .replace("\r\n", "\n"),
            raw: String::from_utf8_lossy(raw).into_owned(),
            file: None,
        }
    }

    /// Whether it is addressed to `address`: by the envelope when it has one, else by `To:`.
    pub fn is_for(&self, address: &str) -> bool {
        if self.envelope_to.is_empty() {
            self.to.to_lowercase().contains(&address.to_lowercase())
        } else {
            self.envelope_to
                .iter()
                .any(|to| to.eq_ignore_ascii_case(address))
        }
    }

    /// The first whitespace-separated word of the body that contains `needle`, e.g. the
    /// reset link with `"/reset-password/"`.
    pub fn link_containing(&self, needle: &str) -> Option<&str> {
        self.text.split_whitespace().find(|w| w.contains(needle))
    }
}

/// What the receiver accepts.
#[derive(Debug, Clone, Default)]
pub struct SmtpOptions {
    /// Listen on this port (0: a free one).
    pub port: u16,
    /// Require a login (AUTH PLAIN or LOGIN, over plain TCP) with this user and password.
    pub login: Option<(String, String)>,
    /// Refuse these recipients with a permanent error (550).
    pub refuse: Vec<String>,
}

/// An SMTP server on 127.0.0.1 that accepts mail until dropped.
pub struct SmtpReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    options: SmtpOptions,
    /// Every mail accepted, with whether `wait_for` already handed it out.
    mails: Mutex<Vec<(ReceivedMail, bool)>>,
    arrived: Notify,
}

impl SmtpReceiver {
    /// A receiver on a free port that accepts every mail.
    pub fn start() -> SmtpReceiver {
        SmtpReceiver::start_with(SmtpOptions::default())
    }

    /// A receiver on `port`: e.g. the one a server was pointed at while nothing listened.
    pub fn start_on(port: u16) -> SmtpReceiver {
        SmtpReceiver::start_with(SmtpOptions {
            port,
            ..SmtpOptions::default()
        })
    }

    pub fn start_with(options: SmtpOptions) -> SmtpReceiver {
        let listener = TcpListener::bind(("127.0.0.1", options.port)).expect("SMTP port free");
        let addr = listener.local_addr().unwrap();
        let mut session = SessionBuilder::new("livepet-test-smtp");
        if options.login.is_some() {
            session
                .enable_auth(AuthMechanism::Plain)
                .enable_auth(AuthMechanism::Login)
                // Plain TCP on loopback: there is no TLS to wait for.
                .insecure_enable_plaintext_auth();
        }
        let shared = Arc::new(Shared {
            options,
            mails: Mutex::new(Vec::new()),
            arrived: Notify::new(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = std::thread::spawn({
            let (shared, stop) = (shared.clone(), stop.clone());
            move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let (session, shared) = (session.clone(), shared.clone());
                    std::thread::spawn(move || {
                        let _ = converse(stream, &session, shared);
                    });
                }
            }
        });
        SmtpReceiver {
            addr,
            shared,
            stop,
            acceptor: Some(acceptor),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `smtp://127.0.0.1:PORT`, or with the login's user and password when it needs one.
    pub fn url(&self) -> String {
        match &self.shared.options.login {
            Some((user, password)) => format!("smtp://{user}:{password}@{}", self.addr),
            None => format!("smtp://{}", self.addr),
        }
    }

    /// Waits until a mail to `address` has arrived that no earlier call returned, and
    /// returns it (the oldest such); panics after `timeout`, listing what did arrive.
    pub async fn wait_for(&self, address: &str, timeout: Duration) -> ReceivedMail {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before looking, so a mail that lands in between still wakes us.
            let mut arrived = std::pin::pin!(self.shared.arrived.notified());
            arrived.as_mut().enable();
            {
                let mut mails = self.shared.mails.lock().unwrap();
                if let Some((mail, taken)) = mails.iter_mut().find(|(m, t)| !t && m.is_for(address))
                {
                    *taken = true;
                    return mail.clone();
                }
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let got: Vec<_> = self
                    .received()
                    .iter()
                    .map(|m| format!("{:?} to {:?}", m.subject, m.envelope_to))
                    .collect();
                panic!("no mail to {address} within {timeout:?}; received: {got:?}");
            }
        }
    }

    /// Every mail accepted so far, oldest first.
    pub fn received(&self) -> Vec<ReceivedMail> {
        let mails = self.shared.mails.lock().unwrap();
        mails.iter().map(|(m, _)| m.clone()).collect()
    }
}

impl Drop for SmtpReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the blocking accept so the thread sees the flag and lets go of the port.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// One SMTP conversation, line by line through mailin's state machine.
fn converse(
    stream: TcpStream,
    session: &SessionBuilder,
    shared: Arc<Shared>,
) -> std::io::Result<()> {
    let peer = stream.peer_addr()?.ip();
    // A client that goes silent must not keep a thread forever.
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut session = session.build(peer, Collector::new(shared));
    session.greeting().write_to(&mut writer)?;
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let response = session.process(&line);
        match response.action {
            Action::Reply => response.write_to(&mut writer)?,
            Action::Close => return response.write_to(&mut writer),
            // STARTTLS is never offered, so never asked for.
            Action::UpgradeTls => return Ok(()),
            Action::NoReply => {}
        }
    }
}

/// The receiver's side of one conversation: collects the envelope and the data.
struct Collector {
    shared: Arc<Shared>,
    login: Option<String>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Collector {
    fn new(shared: Arc<Shared>) -> Collector {
        Collector {
            shared,
            login: None,
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
        }
    }

    fn log_in(&mut self, user: &str, password: &str) -> Response {
        match &self.shared.options.login {
            Some((u, p)) if u == user && p == password => {
                self.login = Some(user.to_owned());
                mailin::response::AUTH_OK
            }
            _ => mailin::response::INVALID_CREDENTIALS,
        }
    }
}

impl Handler for Collector {
    fn rcpt(&mut self, to: &str) -> Response {
        let refused = self.shared.options.refuse.iter();
        if refused.clone().any(|r| r.eq_ignore_ascii_case(to)) {
            mailin::response::NO_MAILBOX
        } else {
            mailin::response::OK
        }
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.from = from.to_owned();
        self.to = to.to_vec();
        self.data.clear();
        mailin::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let mut mail = ReceivedMail::parse(&self.data);
        mail.envelope_from = std::mem::take(&mut self.from);
        mail.envelope_to = std::mem::take(&mut self.to);
        mail.login = self.login.clone();
        self.shared.mails.lock().unwrap().push((mail, false));
        self.shared.arrived.notify_waiters();
        mailin::response::OK
    }

    fn auth_plain(&mut self, _authorization_id: &str, user: &str, password: &str) -> Response {
        self.log_in(user, password)
    }

    fn auth_login(&mut self, user: &str, password: &str) -> Response {
        self.log_in(user, password)
    }
}

/// A port on 127.0.0.1 that nothing listens on right now (taken from the OS, then let go).
pub fn unused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until an `.eml` file addressed to `address` is in `dir` (the oldest such, by its
/// time-ordered name) and returns it, read; panics after `timeout`. Polls the folder: a file
/// appearing is the event, and there is nothing to wait on but the folder.
pub async fn wait_for_eml(dir: &Path, address: &str, timeout: Duration) -> ReceivedMail {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(found) = eml_files(dir).into_iter().find(|m| m.is_for(address)) {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no .eml file for {address} in {} within {timeout:?}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every `.eml` file in `dir`, oldest first, read.
pub fn eml_files(dir: &Path) -> Vec<ReceivedMail> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| ReceivedMail {
            file: Some(path.clone()),
            ..ReceivedMail::parse(&std::fs::read(&path).unwrap())
        })
        .collect()
}
