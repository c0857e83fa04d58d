//! Decoding the server's WebSocket frames into the shared [`ServerMsg`].
//!
//! Why not `serde_json::from_str::<ServerMsg>`: `ServerMsg` is an internally tagged enum,
//! and serde decodes those by buffering every frame into a generic `Content` tree first. In
//! WASM that machinery alone costs about 50 KB (18 KB gzipped), a fifth of our size budget.
//! Here one flat struct with every field optional is read in a single pass, then turned into
//! the shared type. The shared type stays the source of truth: building `Stats` names every
//! field (a new one fails to compile here), and the tests round-trip every variant through
//! the real serializer.

use livepet_shared::wire::{ActivePet, ErrorCode, PetView, ServerMsg, Stats};
use livepet_shared::PetId;
use serde::de::Error as _;
use serde::Deserialize;

/// The `"type"` of a server frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Pet,
    ActivePets,
    ActivePetsChanged,
    Treats,
    Pong,
    Error,
    Stats,
}

/// Every field any frame may carry.
#[derive(Deserialize)]
struct Flat {
    #[serde(rename = "type")]
    kind: Kind,
    pet: Option<PetView>,
    offset: Option<u32>,
    total: Option<u64>,
    pets: Option<Vec<ActivePet>>,
    joined: Option<Vec<ActivePet>>,
    left: Option<Vec<PetId>>,
    available: Option<u32>,
    code: Option<ErrorCode>,
    message: Option<String>,
    pets_alive: Option<u64>,
    ticks_per_second: Option<f64>,
    viewers: Option<u64>,
    active_pets: Option<u64>,
    connections: Option<u64>,
    last_flush_rows: Option<u64>,
    last_flush_seconds: Option<f64>,
    persist_lag_seconds: Option<f64>,
    resident_memory_bytes: Option<u64>,
    uptime_seconds: Option<f64>,
}

fn need<T>(v: Option<T>, field: &'static str) -> Result<T, serde_json::Error> {
    v.ok_or_else(|| serde_json::Error::missing_field(field))
}

/// Reads one text frame from the server.
pub fn decode(text: &str) -> Result<ServerMsg, serde_json::Error> {
    let f: Flat = serde_json::from_str(text)?;
    Ok(match f.kind {
        Kind::Pet => ServerMsg::Pet {
            pet: need(f.pet, "pet")?,
        },
        Kind::ActivePets => ServerMsg::ActivePets {
            offset: need(f.offset, "offset")?,
            total: need(f.total, "total")?,
            pets: need(f.pets, "pets")?,
        },
        Kind::ActivePetsChanged => ServerMsg::ActivePetsChanged {
            joined: need(f.joined, "joined")?,
            left: need(f.left, "left")?,
            total: need(f.total, "total")?,
        },
        Kind::Treats => ServerMsg::Treats {
            available: need(f.available, "available")?,
        },
        Kind::Pong => ServerMsg::Pong,
        Kind::Error => ServerMsg::Error {
            code: need(f.code, "code")?,
            message: need(f.message, "message")?,
        },
        Kind::Stats => ServerMsg::Stats(Stats {
            pets_alive: need(f.pets_alive, "pets_alive")?,
            ticks_per_second: need(f.ticks_per_second, "ticks_per_second")?,
            viewers: need(f.viewers, "viewers")?,
            active_pets: need(f.active_pets, "active_pets")?,
            connections: need(f.connections, "connections")?,
            last_flush_rows: need(f.last_flush_rows, "last_flush_rows")?,
            last_flush_seconds: need(f.last_flush_seconds, "last_flush_seconds")?,
            persist_lag_seconds: need(f.persist_lag_seconds, "persist_lag_seconds")?,
            resident_memory_bytes: need(f.resident_memory_bytes, "resident_memory_bytes")?,
            uptime_seconds: need(f.uptime_seconds, "uptime_seconds")?,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use livepet_shared::{Species, UserId};

    /// Exhaustive on purpose: a new `ServerMsg` variant stops this compiling until the
    /// decoder knows it.
    fn kind(msg: &ServerMsg) -> Kind {
        match msg {
            ServerMsg::Pet { .. } => Kind::Pet,
            ServerMsg::ActivePets { .. } => Kind::ActivePets,
            ServerMsg::ActivePetsChanged { .. } => Kind::ActivePetsChanged,
            ServerMsg::Treats { .. } => Kind::Treats,
            ServerMsg::Pong => Kind::Pong,
            ServerMsg::Error { .. } => Kind::Error,
            ServerMsg::Stats(_) => Kind::Stats,
        }
    }

    fn every_variant() -> Vec<ServerMsg> {
        let a = ActivePet {
            id: PetId(3),
            name: "Rex".into(),
            species: Species::Dog,
            owner_id: UserId(5),
        };
        vec![
            ServerMsg::Pet {
                pet: PetView {
                    id: PetId(1),
                    name: "Ada".into(),
                    species: Species::Owl,
                    age: 7,
                    hunger: 255,
                    alive: true,
                    born_at: 1_700_000_000_000,
                    owner_id: UserId(2),
                    at: 1_700_000_001_000,
                },
            },
            ServerMsg::ActivePets {
                offset: 50,
                total: 1_234,
                pets: vec![a.clone()],
            },
            ServerMsg::ActivePetsChanged {
                joined: vec![a],
                left: vec![PetId(9)],
                total: 1_235,
            },
            ServerMsg::Treats { available: 4 },
            ServerMsg::Pong,
            ServerMsg::Error {
                code: ErrorCode::NoTreats,
                message: "none left".into(),
            },
            ServerMsg::Stats(Stats {
                pets_alive: 1_000_000,
                ticks_per_second: 199_999.5,
                viewers: 3,
                active_pets: 2,
                connections: 4,
                last_flush_rows: 12,
                last_flush_seconds: 0.25,
                persist_lag_seconds: 1.5,
                resident_memory_bytes: 123_456_789,
                uptime_seconds: 3_600.25,
            }),
        ]
    }

    #[test]
    fn every_variant_round_trips_through_the_real_serializer() {
        let all = every_variant();
        let kinds: std::collections::HashSet<_> =
            all.iter().map(|m| format!("{:?}", kind(m))).collect();
        assert_eq!(kinds.len(), 7, "every variant is covered");
        for msg in all {
            let json = serde_json::to_string(&msg).unwrap();
            assert_eq!(decode(&json).unwrap(), msg, "{json}");
            // And it agrees with serde's own decoding of the shared type.
            assert_eq!(serde_json::from_str::<ServerMsg>(&json).unwrap(), msg);
        }
    }

    #[test]
    fn refuses_what_serde_refuses() {
        assert!(decode(r#"{"type":"fly"}"#).is_err());
        assert!(decode(r#"{"type":"treats"}"#).is_err());
        assert!(decode(r#"{"type":"treats","available":"x"}"#).is_err());
        assert!(decode("not json").is_err());
        // A page needs its place and the count; a change needs the new count.
        assert!(decode(r#"{"type":"active_pets","total":3,"pets":[]}"#).is_err());
        assert!(decode(r#"{"type":"active_pets","offset":0,"pets":[]}"#).is_err());
        assert!(decode(r#"{"type":"active_pets","offset":-1,"total":3,"pets":[]}"#).is_err());
        assert!(decode(r#"{"type":"active_pets_changed","joined":[],"left":[]}"#).is_err());
        // Both lists empty: only the count changed.
        assert_eq!(
            decode(r#"{"type":"active_pets_changed","joined":[],"left":[],"total":7}"#).unwrap(),
            ServerMsg::ActivePetsChanged {
                joined: vec![],
                left: vec![],
                total: 7
            }
        );
        // Fields of other frames are ignored, like serde ignores unknown fields.
        assert_eq!(
            decode(r#"{"type":"pong","extra":1}"#).unwrap(),
            ServerMsg::Pong
        );
    }
}
