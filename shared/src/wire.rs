//! The wire contract: every JSON body of the HTTP API and every WebSocket frame.
//! The server and the browser both use these types, so they cannot drift apart.

use crate::{PetId, Species, UserId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub available_treats: u32,
}

/// `{"user": …}`: the body of register, login and `GET /api/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserBody {
    pub user: User,
}

/// Body of `POST /api/users` and `POST /api/session`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub email: String,
    pub password: String,
    /// "Keep me logged in": a 60-day session with a lasting cookie; otherwise a browser
    /// session cookie and a 1-day session. Absent means `false`.
    #[serde(default)]
    pub remember: bool,
}

/// Body of `POST /api/password-reset`: where to send a reset link (if it is an account).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetRequest {
    pub email: String,
}

/// Body of `POST /api/password-reset/{token}`: the new password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPassword {
    pub password: String,
}

/// Body of `PUT /api/me/password`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

/// Body of `PUT /api/me/email`: the new address gets a confirmation link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEmail {
    pub current_password: String,
    pub email: String,
}

/// Body of `DELETE /api/me`: the password, so a borrowed browser cannot delete an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteAccount {
    pub password: String,
}

/// The WebSocket close code for "your session ended" (logout, password change, expiry…):
/// the web app shows "You were logged out" and goes to the login page.
pub const CLOSE_SESSION_ENDED: u16 = 4001;

/// How many pets one page of `GET /api/pets` holds at most; `?before={id}` gives the next.
pub const PETS_PAGE: usize = 500;

/// The page of the active list a new WebSocket session is shown until it asks for another.
pub const ACTIVE_PAGE_DEFAULT: u32 = 50;
/// The largest page of the active list a session may ask for.
pub const ACTIVE_PAGE_MAX: u32 = 100;

/// Body of `POST /api/pets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPet {
    pub name: String,
    pub species: String,
}

/// A pet as the API and the WebSocket show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PetView {
    pub id: PetId,
    pub name: String,
    pub species: Species,
    pub age: u32,
    pub hunger: u32,
    pub alive: bool,
    /// Adoption time, milliseconds since the Unix epoch.
    pub born_at: i64,
    pub owner_id: UserId,
    /// Server time (ms since the Unix epoch) when this state was produced, so clients can
    /// measure how late it reached them.
    pub at: i64,
}

/// One entry of `GET /api/pets`: a pet as [`PetView`] shows it, plus, for a pet whose stored
/// record is damaged, what is wrong with it. Such a pet is not alive in the world until its
/// record is repaired: it shows `alive: false`, and fields that could not be read show 0, an
/// empty name or the first species. The entry is a `PetView` with one extra key, so a client
/// that reads the list as `PetView`s still can.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PetListEntry {
    #[serde(flatten)]
    pub pet: PetView,
    /// Set only for a damaged record: the problem, e.g. "age is 4294967297".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damaged: Option<String>,
}

/// A pet in the "active pets" list: one whose owner has its page open right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivePet {
    pub id: PetId,
    pub name: String,
    pub species: Species,
    /// Whose pet it is, so a page can tell one's own pets from others' without asking.
    pub owner_id: UserId,
}

/// One species for the picker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeciesInfo {
    pub id: Species,
    pub label: String,
    pub emoji: String,
}

/// A WebSocket frame from the browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// Start receiving a pet's state (owner only); puts it in the active list. Someone
    /// else's pet is answered like a missing one: `not_found`, "no such pet".
    Watch { pet_id: PetId },
    /// Stop receiving a pet's state.
    Unwatch { pet_id: PetId },
    /// Feed one's own pet; someone else's is `not_found`, "no such pet", like a missing one.
    Feed { pet_id: PetId },
    /// Spend a treat on someone else's active pet.
    GiveTreat { pet_id: PetId },
    /// Application-level keep-alive; answered with `pong`.
    Ping,
    /// Start receiving `stats` about once a second (the dashboard).
    SubscribeStats,
    /// Show this page of the active list (sorted by name): answered with `active_pets`,
    /// then `active_pets_changed` whenever the page or the count changes. `limit` is at
    /// most [`ACTIVE_PAGE_MAX`]; `limit: 0` stops the list altogether. A new session starts
    /// on `offset: 0, limit:` [`ACTIVE_PAGE_DEFAULT`].
    ActivePetsPage { offset: u32, limit: u32 },
}

impl ClientMsg {
    /// Every `type` a client may send, as on the wire. A test checks it against the enum,
    /// so a new frame cannot be forgotten here.
    pub const TYPES: [&'static str; 7] = [
        "watch",
        "unwatch",
        "feed",
        "give_treat",
        "ping",
        "subscribe_stats",
        "active_pets_page",
    ];

    /// This frame's `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            ClientMsg::Watch { .. } => "watch",
            ClientMsg::Unwatch { .. } => "unwatch",
            ClientMsg::Feed { .. } => "feed",
            ClientMsg::GiveTreat { .. } => "give_treat",
            ClientMsg::Ping => "ping",
            ClientMsg::SubscribeStats => "subscribe_stats",
            ClientMsg::ActivePetsPage { .. } => "active_pets_page",
        }
    }
}

/// World-wide aggregates for the dashboard. Never a user's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub pets_alive: u64,
    pub ticks_per_second: f64,
    pub viewers: u64,
    pub active_pets: u64,
    pub connections: u64,
    pub last_flush_rows: u64,
    pub last_flush_seconds: f64,
    pub persist_lag_seconds: f64,
    pub resident_memory_bytes: u64,
    pub uptime_seconds: f64,
}

/// A WebSocket frame to the browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// A pet's current state: on watch, on every tick, feed and treat.
    Pet {
        pet: PetView,
    },
    /// The session's page of the active list (sorted by name, from `offset`), and how many
    /// pets are active in all: sent on connect and on `active_pets_page`.
    ActivePets {
        offset: u32,
        total: u64,
        pets: Vec<ActivePet>,
    },
    /// Changes to the session's page since the last frame, and the new count. Applied to
    /// the page as last shown, it gives the page as it is now; both lists may be empty when
    /// only the count changed.
    ActivePetsChanged {
        joined: Vec<ActivePet>,
        left: Vec<PetId>,
        total: u64,
    },
    /// The user's treat count.
    Treats {
        available: u32,
    },
    Pong,
    /// Something the client sent could not be done; the session stays up.
    Error {
        code: ErrorCode,
        message: String,
    },
    Stats(Stats),
}

/// Declares [`ErrorCode`] once: each variant with its wire name, so `as_str`, `ALL` and
/// serde can never disagree.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)+) => {
        /// Every error code the API and the WebSocket can return.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ErrorCode {
            $($(#[$doc])* #[serde(rename = $name)] $variant,)+
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The snake_case name, as on the wire and in metrics labels.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)+
                }
            }
        }
    };
}

error_codes! {
    /// A body or frame of the wrong shape.
    BadRequest => "bad_request",
    /// A body or frame that is not JSON.
    InvalidJson => "invalid_json",
    /// A frame whose `type` is not one of [`ClientMsg::TYPES`].
    UnknownType => "unknown_type",
    /// No session, or it has ended; or wrong credentials.
    Unauthorized => "unauthorized",
    /// Not allowed for this user or from this origin.
    Forbidden => "forbidden",
    NotFound => "not_found",
    EmailTaken => "email_taken",
    /// Field-by-field problems, in `fields`.
    ValidationFailed => "validation_failed",
    RateLimited => "rate_limited",
    PayloadTooLarge => "payload_too_large",
    UnsupportedMediaType => "unsupported_media_type",
    BinaryNotSupported => "binary_not_supported",
    /// The database (or another service) is unavailable: retry later.
    ServiceUnavailable => "service_unavailable",
    Internal => "internal",
    PetDead => "pet_dead",
    NotActive => "not_active",
    OwnPet => "own_pet",
    NoTreats => "no_treats",
    /// A reset or confirmation link that is unknown, used or expired.
    InvalidToken => "invalid_token",
    /// A per-user limit (live pets, open sockets, watched pets) is reached.
    LimitReached => "limit_reached",
}

/// The inside of an HTTP error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// Per-field messages for validation errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, String>>,
}

/// Every HTTP error body: `{"error": {"code": …, "message": …, "fields": …}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: ApiErrorDetail,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn client_frames_match_the_contract() {
        let m: ClientMsg = serde_json::from_value(json!({"type":"watch","pet_id":1})).unwrap();
        assert_eq!(m, ClientMsg::Watch { pet_id: PetId(1) });
        let m: ClientMsg = serde_json::from_value(json!({"type":"give_treat","pet_id":2})).unwrap();
        assert_eq!(m, ClientMsg::GiveTreat { pet_id: PetId(2) });
        let m: ClientMsg = serde_json::from_value(json!({"type":"ping"})).unwrap();
        assert_eq!(m, ClientMsg::Ping);
        let m: ClientMsg =
            serde_json::from_value(json!({"type":"active_pets_page","offset":100,"limit":50}))
                .unwrap();
        assert_eq!(
            m,
            ClientMsg::ActivePetsPage {
                offset: 100,
                limit: 50
            }
        );
        assert!(serde_json::from_value::<ClientMsg>(json!({"type":"fly"})).is_err());
        assert!(serde_json::from_value::<ClientMsg>(json!({"type":"feed"})).is_err());
        assert!(serde_json::from_value::<ClientMsg>(json!({"type":"feed","pet_id":"x"})).is_err());
    }

    #[test]
    fn server_frames_match_the_contract() {
        let v = serde_json::to_value(ServerMsg::Treats { available: 4 }).unwrap();
        assert_eq!(v, json!({"type":"treats","available":4}));
        let v = serde_json::to_value(ServerMsg::ActivePetsChanged {
            joined: vec![ActivePet {
                id: PetId(3),
                name: "Rex".into(),
                species: Species::Dog,
                owner_id: UserId(7),
            }],
            left: vec![PetId(9)],
            total: 12,
        })
        .unwrap();
        assert_eq!(
            v,
            json!({"type":"active_pets_changed","joined":[{"id":3,"name":"Rex","species":"dog","owner_id":7}],"left":[9],"total":12})
        );
        let v = serde_json::to_value(ServerMsg::ActivePets {
            offset: 50,
            total: 51,
            pets: vec![],
        })
        .unwrap();
        assert_eq!(
            v,
            json!({"type":"active_pets","offset":50,"total":51,"pets":[]})
        );
        let v = serde_json::to_value(ServerMsg::Error {
            code: ErrorCode::NoTreats,
            message: "none left".into(),
        })
        .unwrap();
        assert_eq!(
            v,
            json!({"type":"error","code":"no_treats","message":"none left"})
        );
        assert_eq!(
            serde_json::to_value(ServerMsg::Pong).unwrap(),
            json!({"type":"pong"})
        );
    }

    #[test]
    fn every_error_code_matches_its_serde_name() {
        assert_eq!(ErrorCode::ALL.len(), 20);
        for &code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
            let back: ErrorCode = serde_json::from_value(json!(code.as_str())).unwrap();
            assert_eq!(back, code);
            let name = code.as_str();
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name} is not snake_case"
            );
        }
    }

    /// One example of each client frame. The match makes the compiler list every variant:
    /// adding a frame to `ClientMsg` fails to build here until it has an example.
    fn one_of_each_client_frame() -> Vec<ClientMsg> {
        let id = PetId(1);
        let all = vec![
            ClientMsg::Watch { pet_id: id },
            ClientMsg::Unwatch { pet_id: id },
            ClientMsg::Feed { pet_id: id },
            ClientMsg::GiveTreat { pet_id: id },
            ClientMsg::Ping,
            ClientMsg::SubscribeStats,
            ClientMsg::ActivePetsPage {
                offset: 50,
                limit: 50,
            },
        ];
        let mut seen = std::collections::BTreeSet::new();
        for m in &all {
            seen.insert(match m {
                ClientMsg::Watch { .. } => 0,
                ClientMsg::Unwatch { .. } => 1,
                ClientMsg::Feed { .. } => 2,
                ClientMsg::GiveTreat { .. } => 3,
                ClientMsg::Ping => 4,
                ClientMsg::SubscribeStats => 5,
                ClientMsg::ActivePetsPage { .. } => 6,
            });
        }
        assert_eq!(seen.len(), 7, "one example per variant");
        all
    }

    #[test]
    fn client_frame_types_list_every_variant_with_its_serde_tag() {
        let all = one_of_each_client_frame();
        assert_eq!(all.len(), ClientMsg::TYPES.len());
        for m in &all {
            let tag = serde_json::to_value(m).unwrap()["type"].clone();
            assert_eq!(tag, json!(m.type_name()));
            assert!(ClientMsg::TYPES.contains(&m.type_name()), "{tag} missing");
            let back: ClientMsg = serde_json::from_value(serde_json::to_value(m).unwrap()).unwrap();
            assert_eq!(&back, m);
        }
    }

    #[test]
    fn remember_defaults_to_off() {
        let c: Credentials =
            serde_json::from_value(json!({"email":"a@b.c","password":"p"})).unwrap();
        assert!(!c.remember);
        let c: Credentials =
            serde_json::from_value(json!({"email":"a@b.c","password":"p","remember":true}))
                .unwrap();
        assert!(c.remember);
    }

    #[test]
    fn api_error_omits_empty_fields() {
        let e = ApiError {
            error: ApiErrorDetail {
                code: ErrorCode::NotFound,
                message: "no such pet".into(),
                fields: None,
            },
        };
        assert_eq!(
            serde_json::to_value(e).unwrap(),
            json!({"error":{"code":"not_found","message":"no such pet"}})
        );
    }
}
