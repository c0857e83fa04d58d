//! Outgoing mail (password resets, email changes): a bounded queue drained by a background
//! task that sends through SMTP (lettre, rustls) or, with no SMTP server configured, writes
//! each mail as an `.eml` file an operator can open; and the links that mails point to.
//!
//! Sending never blocks and never fails for the caller: a request handler hands a [`Mail`]
//! to [`Mailer::send`] and moves on. Delivery is retried a few times with backoff; what
//! happens to each mail is logged without its body (bodies hold secret links), and the
//! recipient's address only at debug level (it is personal data; a mail's number ties the
//! debug line to the others).

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport as _, Message, Tokio1Executor};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};
use url::Url;

/// Mails waiting to be sent; beyond this a new mail is dropped (and logged), so a flood of
/// reset requests while SMTP is down cannot eat the server's memory.
pub const QUEUE_CAPACITY: usize = 1_000;

/// Waits between attempts: a mail is tried at once, after 1 s, then after 5 s more.
const RETRY_AFTER: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(5)];
const ATTEMPTS: usize = RETRY_AFTER.len() + 1;

/// Mails being delivered at once: one slow or retrying mail does not hold up the others,
/// and a queue full of mails for a dead server does not open a thousand connections.
const IN_FLIGHT: usize = 4;

/// One SMTP conversation may take this long (lettre's default, 60 s, would keep a mail
/// to a black-holed server in flight for minutes across its attempts).
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a graceful stop waits for queued mail to go out.
pub const STOP_WAIT: Duration = Duration::from_secs(2);

/// The sender when `--mail-from` is not given.
pub const DEFAULT_FROM: &str = "LivePet <livepet@localhost>";

/// A plain-text mail to one recipient. The sender is the server's (`--mail-from`).
#[derive(Clone)]
pub struct Mail {
    /// The recipient's address, e.g. `alice@example.com`.
    pub to: String,
    pub subject: String,
    /// The body, plain text; lines end in `\n` (sent as CRLF).
    pub text: String,
}

// By hand, so a mail printed by mistake shows no secret link.
impl fmt::Debug for Mail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mail")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Where and how mail goes, from the command line.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// The SMTP server; `None` writes `.eml` files to `dir` instead.
    pub smtp_url: Option<SmtpUrl>,
    /// The sender, e.g. `LivePet <livepet@example.com>` (checked by [`Mailer::start`]).
    pub from: String,
    /// Where `.eml` files go when there is no SMTP server.
    pub dir: PathBuf,
}

/// What the mailer has done since it started (for tests and the log).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MailStats {
    /// Mails handed to the SMTP server or written to a file.
    pub sent: u64,
    /// Attempts that failed (each retried one counts once per failure).
    pub failed_attempts: u64,
    /// Mails given up on: every attempt failed, the server refused them for good, or the
    /// recipient is not a valid address.
    pub given_up: u64,
    /// Mails refused by [`Mailer::send`]: the queue was full or the server was stopping.
    pub dropped: u64,
    /// Mails queued or being delivered right now.
    pub pending: u64,
}

/// The server's outgoing mail. Cheap to clone; every clone feeds the same queue.
#[derive(Clone)]
pub struct Mailer {
    queue: mpsc::Sender<Queued>,
    shared: Arc<Shared>,
}

/// What [`Mailer::send`] and the delivery tasks both touch.
struct Shared {
    next_id: AtomicU64,
    /// Set by [`Mailer::stop`]: later mails are dropped, so the count it reports is final.
    closed: AtomicBool,
    /// Queued plus in delivery; a watch so [`Mailer::stop`] can wait for it to reach 0.
    pending: watch::Sender<u64>,
    sent: AtomicU64,
    failed_attempts: AtomicU64,
    given_up: AtomicU64,
    dropped: AtomicU64,
}

struct Queued {
    id: u64,
    mail: Mail,
}

impl Mailer {
    /// Checks the sender, prepares the transport (creating the mail folder when there is no
    /// SMTP server), logs once which way mail goes, and starts the background task on the
    /// current actix/tokio runtime. Must run inside an actix System.
    pub async fn start(cfg: MailConfig) -> anyhow::Result<Mailer> {
        let from: Mailbox = parse_mailbox(&cfg.from)
            .map_err(|e| anyhow::anyhow!("--mail-from (LIVEPET_MAIL_FROM): {e}"))?;
        let transport = match &cfg.smtp_url {
            Some(url) => {
                let smtp = url
                    .transport()
                    .map_err(|e| anyhow::anyhow!("--smtp-url {url}: {e}"))?;
                log::info!("mail: SMTP via {url}, from {from}");
                Transport::Smtp(smtp)
            }
            None => {
                let dir = std::path::absolute(&cfg.dir).unwrap_or_else(|_| cfg.dir.clone());
                let create = dir.clone();
                // A folder we cannot create is not worth refusing to start for: the server
                // works without mail, and each failed write says why in the log.
                let created =
                    actix_web::rt::task::spawn_blocking(move || create_private_dir(&create)).await;
                match created {
                    Ok(Ok(())) => log::info!(
                        "mail: no --smtp-url, writing .eml files to {}",
                        dir.display()
                    ),
                    Ok(Err(e)) => log::warn!(
                        "mail: no --smtp-url, and the mail folder {} cannot be created ({e}): \
                         mails will fail until it can (set --mail-dir or --smtp-url)",
                        dir.display()
                    ),
                    Err(e) => anyhow::bail!("mail folder setup task failed: {e}"),
                }
                Transport::Dir(dir)
            }
        };
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        let shared = Arc::new(Shared {
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            pending: watch::Sender::new(0),
            sent: AtomicU64::new(0),
            failed_attempts: AtomicU64::new(0),
            given_up: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        let courier = Arc::new(Courier {
            from,
            transport,
            shared: shared.clone(),
        });
        actix_web::rt::spawn(courier.run(rx));
        Ok(Mailer { queue, shared })
    }

    /// Queues `mail` and returns at once; it is sent in the background. Never fails: a mail
    /// that cannot be queued (the queue is full, the server is stopping) is logged and dropped.
    pub fn send(&self, mail: Mail) {
        let shared = &self.shared;
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        log::debug!("mail #{id} (\"{}\") is for {}", mail.subject, mail.to);
        if shared.closed.load(Ordering::Acquire) {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            log::error!(
                "mail #{id} (\"{}\") dropped: the server is stopping",
                mail.subject
            );
            return;
        }
        // Counted before it is queued, so a delivery never finishes before it was counted.
        shared.pending.send_modify(|n| *n += 1);
        if let Err(e) = self.queue.try_send(Queued { id, mail }) {
            shared.pending.send_modify(|n| *n -= 1);
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            let (why, queued) = match e {
                mpsc::error::TrySendError::Full(q) => (
                    format!("{QUEUE_CAPACITY} mails are already waiting to be sent"),
                    q,
                ),
                mpsc::error::TrySendError::Closed(q) => ("the mailer is not running".to_owned(), q),
            };
            log::error!("mail #{id} (\"{}\") dropped: {why}", queued.mail.subject);
        }
    }

    /// Stops taking mail and waits up to `within` for the queued mails to go out; returns
    /// how many did not (and logs it). For the graceful stop.
    pub async fn stop(&self, within: Duration) -> u64 {
        self.shared.closed.store(true, Ordering::Release);
        let mut pending = self.shared.pending.subscribe();
        let waiting = *pending.borrow();
        if waiting == 0 {
            return 0;
        }
        log::info!(
            "mail: waiting up to {:.0} s for {waiting} mail(s) to go out",
            within.as_secs_f64()
        );
        // The sender lives in `self.shared`, so the watch cannot close while we wait.
        let _ = tokio::time::timeout(within, pending.wait_for(|n| *n == 0)).await;
        let left = *pending.borrow();
        if left > 0 {
            log::warn!("mail: {left} mail(s) not sent before the stop; they are lost");
        }
        left
    }

    /// What the mailer has done so far.
    pub fn stats(&self) -> MailStats {
        let s = &self.shared;
        MailStats {
            sent: s.sent.load(Ordering::Relaxed),
            failed_attempts: s.failed_attempts.load(Ordering::Relaxed),
            given_up: s.given_up.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            pending: *s.pending.borrow(),
        }
    }
}

/// Where mails go.
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Dir(PathBuf),
}

/// A failed attempt, and whether trying again could help.
struct Failure {
    permanent: bool,
    reason: String,
}

/// The background side: takes mails off the queue and delivers them, a few at once.
struct Courier {
    from: Mailbox,
    transport: Transport,
    shared: Arc<Shared>,
}

impl Courier {
    /// Runs until every [`Mailer`] is gone (or the runtime stops).
    async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<Queued>) {
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        while let Some(queued) = rx.recv().await {
            // The semaphore is never closed, so this only waits for a free slot.
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let courier = self.clone();
            actix_web::rt::spawn(async move {
                courier.deliver(queued).await;
                drop(slot);
            });
        }
    }

    async fn deliver(&self, Queued { id, mail }: Queued) {
        let shared = &self.shared;
        let subject = mail.subject.clone();
        match self.message(&mail) {
            Err(e) => {
                shared.given_up.fetch_add(1, Ordering::Relaxed);
                log::error!("mail #{id} (\"{subject}\") not sent: {e}");
            }
            Ok(message) => {
                let raw = message.formatted();
                for attempt in 1..=ATTEMPTS {
                    let failure = match self.attempt(&message, &raw).await {
                        Ok(where_to) => {
                            shared.sent.fetch_add(1, Ordering::Relaxed);
                            log::info!("mail #{id} (\"{subject}\") {where_to}");
                            break;
                        }
                        Err(f) => f,
                    };
                    shared.failed_attempts.fetch_add(1, Ordering::Relaxed);
                    let reason = &failure.reason;
                    if failure.permanent {
                        shared.given_up.fetch_add(1, Ordering::Relaxed);
                        log::error!("mail #{id} (\"{subject}\") refused, not retried: {reason}");
                        break;
                    }
                    match RETRY_AFTER.get(attempt - 1) {
                        Some(wait) => {
                            log::warn!(
                                "mail #{id} (\"{subject}\"): attempt {attempt} of {ATTEMPTS} \
                                 failed ({reason}); trying again in {} s",
                                wait.as_secs()
                            );
                            actix_web::rt::time::sleep(*wait).await;
                        }
                        None => {
                            shared.given_up.fetch_add(1, Ordering::Relaxed);
                            log::error!(
                                "mail #{id} (\"{subject}\") not delivered after {ATTEMPTS} \
                                 attempts, giving up: {reason}"
                            );
                        }
                    }
                }
            }
        }
        shared.pending.send_modify(|n| *n -= 1);
    }

    /// One try; on success, says where the mail went (for the log).
    async fn attempt(&self, message: &Message, raw: &[u8]) -> Result<String, Failure> {
        match &self.transport {
            Transport::Smtp(smtp) => match smtp.send_raw(message.envelope(), raw).await {
                Ok(_) => Ok("sent by SMTP".to_owned()),
                Err(e) => Err(Failure {
                    permanent: e.is_permanent(),
                    reason: e.to_string(),
                }),
            },
            Transport::Dir(dir) => {
                let (dir, raw) = (dir.clone(), raw.to_vec());
                match actix_web::rt::task::spawn_blocking(move || write_eml(&dir, &raw)).await {
                    Ok(Ok(path)) => Ok(format!("written to {}", path.display())),
                    Ok(Err(e)) => Err(Failure {
                        permanent: false,
                        reason: e.to_string(),
                    }),
                    Err(e) => Err(Failure {
                        permanent: false,
                        reason: format!("file writing task failed: {e}"),
                    }),
                }
            }
        }
    }

    fn message(&self, mail: &Mail) -> Result<Message, String> {
        let to = parse_mailbox(&mail.to)?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            // Some relays add none, and spam filters frown on a mail without one.
            .message_id(Some(format!(
                "<{}.{:016x}@{}>",
                crate::clock::now_ms(),
                rand::random::<u64>(),
                self.from.email.domain()
            )))
            .header(ContentType::TEXT_PLAIN)
            .body(text_body(&mail.text))
            .map_err(|e| format!("cannot build the message: {e}"))
    }
}

/// The body of a plain-text mail. ASCII text goes as it is (7bit, lines up to RFC 5322's
/// 998 characters), so a link longer than 76 characters is not cut by quoted-printable soft
/// breaks: a person reading an `.eml` file can copy it. Anything else lets lettre pick.
fn text_body(text: &str) -> Body {
    let plain = text.is_ascii() && !text.contains('\0');
    if plain && text.lines().all(|l| l.len() <= 998) {
        let mut crlf = String::with_capacity(text.len() + text.len() / 40);
        for line in text.lines() {
            // 7bit allows no bare CR; `lines` already took the one before each `\n`.
            crlf.push_str(&line.replace('\r', ""));
            crlf.push_str("\r\n");
        }
        Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::SevenBit)
    } else {
        Body::new(text.to_owned())
    }
}

/// Writes one mail to `dir` as `<ms since the epoch>-<random>.eml`, readable by the owner
/// only (it may hold a reset link). Written under a hidden name and renamed, so a reader
/// never sees half a mail.
fn write_eml(dir: &Path, raw: &[u8]) -> std::io::Result<PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    create_private_dir(dir)?;
    let name = format!(
        "{}-{:08x}.eml",
        crate::clock::now_ms(),
        rand::random::<u32>()
    );
    let temp = dir.join(format!(".{name}.part"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)?;
    file.write_all(raw)?;
    file.sync_all()?;
    let path = dir.join(name);
    std::fs::rename(&temp, &path)?;
    Ok(path)
}

/// Creates `dir` (and its parents) if missing; a folder it creates is private to the owner.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// `Name <user@host>` or `user@host`, with a message fit for the person who typed it.
fn parse_mailbox(s: &str) -> Result<Mailbox, String> {
    s.trim().parse().map_err(|e| {
        format!("`{s}` is not a mail address ({e}); expected e.g. `LivePet <livepet@example.com>`")
    })
}

/// clap's check of `--mail-from`: a usable sender, kept as typed.
pub fn parse_mail_from(s: &str) -> Result<String, String> {
    parse_mailbox(s).map(|_| s.trim().to_owned())
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtp://`: STARTTLS when the server offers it, plain SMTP when it does not.
    Opportunistic,
    /// `smtp://…?tls=required`: STARTTLS or no mail.
    Required,
    /// `smtp://…?tls=none`: plain SMTP, never STARTTLS (a relay on this machine).
    None,
    /// `smtps://`: TLS from the first byte.
    Implicit,
}

/// `--smtp-url`, checked: `smtp://[USER:PASSWORD@]HOST[:PORT][?tls=required|none]` or
/// `smtps://[USER:PASSWORD@]HOST[:PORT]`. Shown (and debug-printed) without the credentials.
#[derive(Clone)]
pub struct SmtpUrl {
    /// The URL in lettre's terms (`from_url`), credentials included.
    lettre_url: String,
    host: String,
    port: u16,
    tls: SmtpTls,
}

impl SmtpUrl {
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn tls(&self) -> SmtpTls {
        self.tls
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        Ok(
            AsyncSmtpTransport::<Tokio1Executor>::from_url(&self.lettre_url)
                .map_err(|e| e.to_string())?
                .timeout(Some(SMTP_TIMEOUT))
                .build(),
        )
    }
}

impl FromStr for SmtpUrl {
    type Err = String;

    /// lettre's `from_url` reads `smtp://` as plain SMTP only (STARTTLS needs
    /// `?tls=opportunistic` or `?tls=required`). Ours means opportunistic STARTTLS, so the
    /// URL is rewritten into lettre's terms here; `?tls=none` asks for lettre's plain
    /// meaning. The port defaults to 587 (submission) for smtp:// and 465 for smtps://.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Error messages never repeat `s`: it may hold a password.
        let mut url = Url::parse(s.trim()).map_err(|e| format!("not a URL: {e}"))?;
        let implicit = match url.scheme() {
            "smtp" => false,
            "smtps" => true,
            other => {
                return Err(format!(
                    "unknown scheme `{other}`: use smtp://HOST[:PORT] or smtps://HOST[:PORT]"
                ))
            }
        };
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => h.to_owned(),
            _ => return Err("no host: use smtp://HOST[:PORT] or smtps://HOST[:PORT]".into()),
        };
        let mut tls_param = None;
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), tls_param.is_none()) {
                ("tls", true) => tls_param = Some(value.into_owned()),
                ("tls", false) => return Err("`tls` is given twice".into()),
                (other, _) => return Err(format!("unknown parameter `{other}` (only `tls`)")),
            }
        }
        let tls = match (implicit, tls_param.as_deref()) {
            (true, None) => SmtpTls::Implicit,
            (true, Some(_)) => {
                return Err("smtps:// is always TLS: drop `?tls=` (or use smtp://)".into())
            }
            (false, None | Some("opportunistic")) => SmtpTls::Opportunistic,
            (false, Some("required")) => SmtpTls::Required,
            (false, Some("none")) => SmtpTls::None,
            (false, Some(other)) => {
                return Err(format!(
                    "unknown `tls={other}`: use tls=required or tls=none (the default uses \
                     STARTTLS when offered)"
                ))
            }
        };
        let port = url.port().unwrap_or(if implicit { 465 } else { 587 });
        url.set_port(Some(port))
            .map_err(|()| "this URL cannot have a port".to_owned())?;
        url.set_query(match tls {
            SmtpTls::Opportunistic => Some("tls=opportunistic"),
            SmtpTls::Required => Some("tls=required"),
            SmtpTls::None | SmtpTls::Implicit => None,
        });
        let parsed = SmtpUrl {
            lettre_url: url.to_string(),
            host,
            port,
            tls,
        };
        // Catches what lettre alone rejects (and loads the TLS roots once, early).
        parsed.transport()?;
        Ok(parsed)
    }
}

impl fmt::Display for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scheme, how) = match self.tls {
            SmtpTls::Opportunistic => ("smtp", " (STARTTLS when offered)"),
            SmtpTls::Required => ("smtp", " (STARTTLS required)"),
            SmtpTls::None => ("smtp", " (plain, no TLS)"),
            SmtpTls::Implicit => ("smtps", " (TLS)"),
        };
        write!(f, "{scheme}://{}:{}{how}", self.host, self.port)
    }
}

// Like `Display`: `ServeArgs` derives `Debug`, and a password must not reach a log that way.
impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SmtpUrl({self})")
    }
}

/// clap's check of `--public-url`: an http(s) origin, returned without a trailing slash
/// (`https://pets.example.com`), since links are built by appending a path to it.
pub fn parse_public_url(s: &str) -> Result<String, String> {
    let url = Url::parse(s.trim()).map_err(|e| format!("`{s}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{s}` must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{s}` has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{s}` must not contain a user name or password"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{s}` must be only scheme, host and port (e.g. https://pets.example.com): \
             LivePet's pages are at the root of that origin"
        ));
    }
    Ok(url.origin().ascii_serialization())
}

/// The links that mails carry, on the origin users reach the server at (`--public-url`).
#[derive(Debug, Clone)]
pub struct Links {
    public_url: String,
}

impl Links {
    /// Links on `public_url`, or, without one, on the address the server is bound to (a
    /// wildcard address becomes loopback, with a warning, since those links only work on
    /// this machine).
    pub fn new(public_url: Option<&str>, bound: SocketAddr) -> Result<Links, String> {
        let public_url = match public_url {
            Some(given) => {
                let origin = parse_public_url(given)?;
                log::info!("links in mails point to {origin}");
                origin
            }
            None if bound.ip().is_unspecified() => {
                let loopback = match bound.ip() {
                    IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
                };
                let origin = format!("http://{}", SocketAddr::new(loopback, bound.port()));
                log::warn!(
                    "links in mails point to {origin}, which only works on this machine: \
                     set --public-url (LIVEPET_PUBLIC_URL) to the address users open"
                );
                origin
            }
            None => {
                let origin = format!("http://{bound}");
                log::info!(
                    "links in mails point to {origin} (set --public-url if users reach the \
                     server at another address)"
                );
                origin
            }
        };
        Ok(Links { public_url })
    }

    /// The origin, without a trailing slash, e.g. `https://pets.example.com`.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// `{public_url}/reset-password/{token}`.
    pub fn reset_password(&self, token: &str) -> String {
        format!("{}/reset-password/{token}", self.public_url)
    }

    /// `{public_url}/confirm-email/{token}`.
    pub fn confirm_email(&self, token: &str) -> String {
        format!("{}/confirm-email/{token}", self.public_url)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn smtp_means_starttls_when_offered_with_lettre_spelled_out() {
        let url: SmtpUrl = "smtp://user:p%40ss@mail.example.com".parse().unwrap();
        assert_eq!(url.tls(), SmtpTls::Opportunistic);
        assert_eq!(url.port(), 587);
        assert_eq!(
            url.lettre_url,
            "smtp://user:p%40ss@mail.example.com:587?tls=opportunistic"
        );
        assert_eq!(
            url.to_string(),
            "smtp://mail.example.com:587 (STARTTLS when offered)"
        );
        assert!(!format!("{url:?}").contains("p%40ss"));
    }

    #[test]
    fn smtp_url_forms() {
        let url: SmtpUrl = "smtp://127.0.0.1:2525?tls=required".parse().unwrap();
        assert_eq!((url.tls(), url.port()), (SmtpTls::Required, 2525));
        let url: SmtpUrl = "smtp://localhost:25?tls=none".parse().unwrap();
        assert_eq!(
            (url.tls(), url.lettre_url.as_str()),
            (SmtpTls::None, "smtp://localhost:25")
        );
        let url: SmtpUrl = "smtps://u:p@smtp.example.com".parse().unwrap();
        assert_eq!((url.tls(), url.port()), (SmtpTls::Implicit, 465));
        assert_eq!(url.host(), "smtp.example.com");
    }

    #[test]
    fn bad_smtp_urls_are_refused_without_echoing_the_password() {
        for bad in [
            "http://u:secret@host",
            "smtp://u:secret@",
            "smtps://u:secret@host?tls=required",
            "smtp://u:secret@host?tls=maybe",
            "smtp://u:secret@host?foo=1",
            "u:secret@host",
        ] {
            let e = bad.parse::<SmtpUrl>().unwrap_err();
            assert!(!e.contains("secret"), "{bad}: {e}");
        }
    }

    #[test]
    fn public_url_is_an_origin() {
        assert_eq!(
            parse_public_url("https://pets.example.com/").unwrap(),
            "https://pets.example.com"
        );
        assert_eq!(
            parse_public_url("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        for bad in [
            "ftp://x.example",
            "https://pets.example.com/app",
            "https://pets.example.com/?a=1",
            "https://u:p@pets.example.com",
            "pets.example.com",
        ] {
            assert!(parse_public_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn links_default_to_the_bound_address_and_loopback_for_a_wildcard() {
        let links = Links::new(None, "127.0.0.1:4321".parse().unwrap()).unwrap();
        assert_eq!(
            links.reset_password("t"),
            "http://127.0.0.1:4321/reset-password/t"
        );
        let links = Links::new(None, "0.0.0.0:80".parse().unwrap()).unwrap();
        assert_eq!(links.public_url(), "http://127.0.0.1:80");
        let links = Links::new(None, "[::]:8080".parse().unwrap()).unwrap();
        assert_eq!(
            links.confirm_email("t"),
            "http://[::1]:8080/confirm-email/t"
        );
        let links = Links::new(
            Some("https://pets.example.com/"),
            "0.0.0.0:80".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(
            links.reset_password("abc"),
            "https://pets.example.com/reset-password/abc"
        );
    }

    #[test]
    fn the_default_sender_is_valid() {
        assert_eq!(parse_mail_from(DEFAULT_FROM).unwrap(), DEFAULT_FROM);
        assert!(parse_mail_from("not an address").is_err());
    }

    #[test]
    fn a_long_ascii_link_is_not_cut_by_soft_line_breaks() {
        let link = format!("https://pets.example.com/reset-password/{}", "x".repeat(43));
        let body = text_body(&format!("Hello,\n\n{link}\n"));
        assert_eq!(body.encoding(), ContentTransferEncoding::SevenBit);
        let raw = String::from_utf8(body.into_vec()).unwrap();
        assert_eq!(raw, format!("Hello,\r\n\r\n{link}\r\n"));
        let body = text_body("Grüße\n");
        assert_ne!(body.encoding(), ContentTransferEncoding::SevenBit);
    }
}
