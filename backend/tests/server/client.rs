//! Real HTTP and WebSocket clients for the tests: one `Client` per simulated browser, with
//! its own session cookie (reqwest), `Ws` for a live socket that waits on frames with a
//! timeout (awc), and `Viewer`, an owner on its pet's page.

use actix_codec::Framed;
use awc::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use futures_util::{SinkExt, StreamExt};
use livepet_shared::wire::{ErrorCode, PetView, ServerMsg};
use livepet_shared::PetId;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

pub const PASSWORD: &str = "correct horse battery";

/// The `Set-Cookie` header of a response (which must have one).
pub fn set_cookie(res: &reqwest::Response) -> String {
    res.headers()
        .get("set-cookie")
        .expect("a Set-Cookie header")
        .to_str()
        .unwrap()
        .to_string()
}

/// One browser: a base URL and, once logged in, a session cookie.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub cookie: Option<String>,
    pub http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            cookie: None,
            http: reqwest::Client::new(),
        }
    }

    fn with_cookie(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cookie {
            Some(c) => rb.header("Cookie", format!("livepet_session={c}")),
            None => rb,
        }
    }

    /// Remembers the session cookie a response sets (or clears).
    fn keep_cookie(&mut self, res: &reqwest::Response) {
        for v in res.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            if let Some(rest) = v.strip_prefix("livepet_session=") {
                let value = rest.split(';').next().unwrap().to_string();
                self.cookie = (!value.is_empty()).then_some(value);
            }
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.with_cookie(self.http.get(format!("{}{path}", self.base)))
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&mut self, path: &str, body: Value) -> reqwest::Response {
        let res = self
            .with_cookie(self.http.post(format!("{}{path}", self.base)).json(&body))
            .send()
            .await
            .unwrap();
        self.keep_cookie(&res);
        res
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        self.with_cookie(
            self.http
                .post(format!("{}{path}", self.base))
                .header("Content-Type", content_type)
                .body(body),
        )
        .send()
        .await
        .unwrap()
    }

    pub async fn delete(&mut self, path: &str) -> reqwest::Response {
        let res = self
            .with_cookie(self.http.delete(format!("{}{path}", self.base)))
            .send()
            .await
            .unwrap();
        self.keep_cookie(&res);
        res
    }

    pub async fn put(&mut self, path: &str, body: Value) -> reqwest::Response {
        let res = self
            .with_cookie(self.http.put(format!("{}{path}", self.base)).json(&body))
            .send()
            .await
            .unwrap();
        self.keep_cookie(&res);
        res
    }

    /// A DELETE with a JSON body (deleting an account needs the password).
    pub async fn delete_json(&mut self, path: &str, body: Value) -> reqwest::Response {
        let res = self
            .with_cookie(self.http.delete(format!("{}{path}", self.base)).json(&body))
            .send()
            .await
            .unwrap();
        self.keep_cookie(&res);
        res
    }

    /// Logs in (a new session, kept as this browser's cookie); returns the response.
    pub async fn log_in(
        &mut self,
        email: &str,
        password: &str,
        remember: bool,
    ) -> reqwest::Response {
        self.post(
            "/api/session",
            json!({"email": email, "password": password, "remember": remember}),
        )
        .await
    }

    /// A second browser logged in as the same user (a session of its own).
    pub async fn another_login(&self, email: &str) -> Client {
        let mut other = Client::new(&self.base);
        let res = other.log_in(email, PASSWORD, false).await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        other
    }

    pub async fn register(&mut self, email: &str) -> reqwest::Response {
        self.post("/api/users", json!({"email": email, "password": PASSWORD}))
            .await
    }

    /// Signs up, asserting success; the session cookie is kept.
    pub async fn sign_up(&mut self, email: &str) {
        let res = self.register(email).await;
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    }

    /// Signs up (asserting success) and adopts one pet; returns the pet.
    pub async fn signup_with_pet(&mut self, email: &str, pet: &str) -> PetView {
        self.sign_up(email).await;
        self.adopt(pet, "cat").await
    }

    pub async fn adopt(&mut self, name: &str, species: &str) -> PetView {
        let res = self
            .post("/api/pets", json!({"name": name, "species": species}))
            .await;
        assert_eq!(res.status(), 201);
        res.json().await.unwrap()
    }

    pub async fn treats(&self) -> u64 {
        let me: Value = self.get("/api/me").await.json().await.unwrap();
        me["user"]["available_treats"].as_u64().unwrap()
    }

    /// Opens /ws with this browser's cookie and its own origin.
    pub async fn ws(&self) -> Ws {
        let (res, framed) = self.ws_request(Some(&self.base)).connect().await.unwrap();
        assert_eq!(res.status(), 101);
        Ws { framed }
    }

    /// Opens /ws and reads the connect greeting (active list and treats).
    pub async fn greeted_ws(&self) -> Ws {
        let mut ws = self.ws().await;
        ws.greeting().await;
        ws
    }

    /// Opens /ws with this Origin (none: no header) and extra headers: the socket, or the
    /// status the upgrade was refused with.
    pub async fn upgrade(&self, origin: Option<&str>, extra: &[(&str, &str)]) -> Result<Ws, u16> {
        let mut req = self.ws_request(origin);
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        match req.connect().await {
            Ok((_, framed)) => Ok(Ws { framed }),
            Err(awc::error::WsClientError::InvalidResponseStatus(s)) => Err(s.as_u16()),
            Err(e) => panic!("the upgrade failed without an answer: {e}"),
        }
    }

    pub fn ws_request(&self, origin: Option<&str>) -> awc::ws::WebsocketsRequest {
        let url = format!("{}/ws", self.base.replacen("http", "ws", 1));
        let mut req = awc::Client::builder()
            .max_http_version(awc::http::Version::HTTP_11)
            .finish()
            .ws(url)
            .max_frame_size(1 << 20);
        if let Some(o) = origin {
            req = req.origin(o);
        }
        if let Some(c) = &self.cookie {
            req = req.cookie(awc::cookie::Cookie::new("livepet_session", c.clone()));
        }
        req
    }
}

/// An owner on its pet's page: signed up with one pet, and a socket past its greeting that
/// watches the pet (its first frame already read).
pub struct Viewer {
    pub pet: PetView,
    pub ws: Ws,
    /// The state of the pet's first frame on this socket: the last state the viewer has
    /// seen until it reads more.
    pub first: PetView,
}

impl Viewer {
    pub async fn sign_up(base: &str, email: &str, pet_name: &str) -> Viewer {
        let mut client = Client::new(base);
        let pet = client.signup_with_pet(email, pet_name).await;
        let mut ws = client.ws().await;
        ws.greeting().await;
        ws.send(json!({"type":"watch","pet_id":pet.id})).await;
        let first = ws.pet_frame(pet.id).await;
        Viewer { pet, ws, first }
    }
}

/// A live WebSocket.
pub struct Ws {
    framed: Framed<BoxedSocket, Codec>,
}

pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// What arrived: a decoded server message, or the close.
#[derive(Debug)]
pub enum Got {
    Msg(ServerMsg),
    Closed(Option<u16>),
}

impl Ws {
    pub async fn send(&mut self, v: Value) {
        self.framed
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, m: Message) {
        self.framed.send(m).await.unwrap();
    }

    /// The next message or close, answering pings on the way.
    pub async fn next(&mut self) -> Got {
        // One deadline for the whole wait: the server's pings must not keep restarting it.
        let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.framed.next())
                .await
                .expect("a frame within the timeout");
            match frame {
                None => return Got::Closed(None),
                Some(Err(_)) => return Got::Closed(None),
                Some(Ok(Frame::Text(t))) => {
                    return Got::Msg(serde_json::from_slice(&t).expect("server frames are valid"))
                }
                Some(Ok(Frame::Close(r))) => return Got::Closed(r.map(|r| u16::from(r.code))),
                Some(Ok(Frame::Ping(p))) => {
                    let _ = self.framed.send(Message::Pong(p)).await;
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Reads the socket to its close; returns the last state of each pet and the close code.
    pub async fn drain(&mut self) -> (HashMap<PetId, PetView>, Option<u16>) {
        let mut last = HashMap::new();
        loop {
            match self.next().await {
                Got::Msg(ServerMsg::Pet { pet }) => {
                    last.insert(pet.id, pet);
                }
                Got::Msg(_) => {}
                Got::Closed(code) => return (last, code),
            }
        }
    }

    pub async fn recv(&mut self) -> ServerMsg {
        match self.next().await {
            Got::Msg(m) => m,
            Got::Closed(c) => panic!("socket closed ({c:?}) while waiting for a frame"),
        }
    }

    /// Skips frames until one matches.
    pub async fn until<T>(&mut self, mut f: impl FnMut(&ServerMsg) -> Option<T>) -> T {
        loop {
            let m = self.recv().await;
            if let Some(v) = f(&m) {
                return v;
            }
        }
    }

    pub async fn pet_frame(&mut self, id: PetId) -> PetView {
        self.until(|m| match m {
            ServerMsg::Pet { pet } if pet.id == id => Some(pet.clone()),
            _ => None,
        })
        .await
    }

    pub async fn error(&mut self) -> ErrorCode {
        self.until(|m| match m {
            ServerMsg::Error { code, .. } => Some(*code),
            _ => None,
        })
        .await
    }

    pub async fn treats(&mut self) -> u32 {
        self.until(|m| match m {
            ServerMsg::Treats { available } => Some(*available),
            _ => None,
        })
        .await
    }

    /// Reads the connect greeting: the active list and the treat count.
    pub async fn greeting(&mut self) -> (Vec<PetId>, u32) {
        let pets = self
            .until(|m| match m {
                ServerMsg::ActivePets { pets, .. } => Some(pets.iter().map(|p| p.id).collect()),
                _ => None,
            })
            .await;
        (pets, self.treats().await)
    }

    /// Waits for the close, skipping frames; its code.
    pub async fn closed(&mut self) -> Option<u16> {
        self.drain().await.1
    }

    pub async fn close(mut self) {
        let _ = self.framed.send(Message::Close(None)).await;
    }
}
