//! The WebSocket protocol: decoding client frames into `ClientMsg`, and the one error type of
//! the socket, [`FrameError`], which becomes an `error` frame. Plain functions, tested
//! without sockets; the session only calls [`decode`] and [`FrameError::to_msg`].

use crate::actors::pet::PetError;
use crate::error::AppError;
use crate::services::pets::NO_SUCH_PET;
use livepet_shared::wire::{ClientMsg, ErrorCode, ServerMsg};

/// Why a frame could not be done: sent to the client as `{"type":"error",…}`; the session
/// stays up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub code: ErrorCode,
    pub message: String,
}

impl FrameError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> FrameError {
        FrameError {
            code,
            message: message.into(),
        }
    }

    /// The `error` frame.
    pub fn to_msg(&self) -> ServerMsg {
        ServerMsg::Error {
            code: self.code,
            message: self.message.clone(),
        }
    }
}

impl From<AppError> for FrameError {
    /// The same code and message as over HTTP; causes are logged, never sent.
    fn from(e: AppError) -> Self {
        e.log_cause();
        FrameError::new(e.code(), e.message())
    }
}

impl From<PetError> for FrameError {
    fn from(e: PetError) -> Self {
        let code = match e {
            // Someone else's pet is answered exactly like a missing one (HTTP does the same),
            // so a socket cannot learn which ids exist by watching or feeding them.
            PetError::NotOwner => return NO_SUCH_PET.into(),
            PetError::Dead => ErrorCode::PetDead,
            PetError::OwnPet => ErrorCode::OwnPet,
        };
        FrameError::new(code, e.to_string())
    }
}

/// Parses one text frame: `invalid_json` if it is not JSON, `unknown_type` if its `type` is
/// not one we know, `bad_request` if the fields are missing or of the wrong type.
pub fn decode(text: &str) -> Result<ClientMsg, FrameError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        FrameError::new(
            ErrorCode::InvalidJson,
            format!("the frame is not JSON: {e}"),
        )
    })?;
    let Some(kind) = value.get("type").and_then(|t| t.as_str()) else {
        return Err(FrameError::new(
            ErrorCode::BadRequest,
            "the frame needs a string field `type`",
        ));
    };
    if !ClientMsg::TYPES.contains(&kind) {
        return Err(FrameError::new(
            ErrorCode::UnknownType,
            format!(
                "unknown frame type `{}`",
                kind.chars().take(40).collect::<String>()
            ),
        ));
    }
    // Deserializing from a reference keeps `kind` (borrowed from `value`) usable below.
    <ClientMsg as serde::Deserialize>::deserialize(&value)
        .map_err(|e| FrameError::new(ErrorCode::BadRequest, format!("bad `{kind}` frame: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use livepet_shared::PetId;
    use serde_json::{json, Value};

    fn frame(e: impl Into<FrameError>) -> Value {
        serde_json::to_value(e.into().to_msg()).unwrap()
    }

    fn error(code: &str, message: &str) -> Value {
        json!({"type": "error", "code": code, "message": message})
    }

    #[test]
    fn decodes_every_known_frame() {
        assert_eq!(
            decode(r#"{"type":"watch","pet_id":3}"#),
            Ok(ClientMsg::Watch { pet_id: PetId(3) })
        );
        assert_eq!(decode(r#"{"type":"ping"}"#), Ok(ClientMsg::Ping));
        assert_eq!(
            decode(r#"{"type":"subscribe_stats"}"#),
            Ok(ClientMsg::SubscribeStats)
        );
        // Every listed type is one serde knows: none is refused as unknown.
        for kind in ClientMsg::TYPES {
            let e = decode(&json!({ "type": kind }).to_string());
            assert!(
                e.as_ref()
                    .map_or_else(|e| e.code != ErrorCode::UnknownType, |_| true),
                "{kind}: {e:?}"
            );
        }
    }

    #[test]
    fn classifies_bad_frames() {
        let code = |t: &str| decode(t).unwrap_err().code;
        assert_eq!(code("not json"), ErrorCode::InvalidJson);
        assert_eq!(code(""), ErrorCode::InvalidJson);
        assert_eq!(code(r#"{"type":"dance"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"pet_id":1}"#), ErrorCode::BadRequest);
        assert_eq!(code(r#"{"type":7}"#), ErrorCode::BadRequest);
        assert_eq!(code(r#"{"type":"feed"}"#), ErrorCode::BadRequest);
        assert_eq!(
            code(r#"{"type":"feed","pet_id":"1"}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"feed","pet_id":1,"x":2}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(code("[1,2]"), ErrorCode::BadRequest);
    }

    #[test]
    fn decode_errors_are_exact_error_frames() {
        assert_eq!(
            frame(decode(r#"{"type":"dance"}"#).unwrap_err()),
            error("unknown_type", "unknown frame type `dance`")
        );
        assert_eq!(
            frame(decode(r#"{"pet_id":1}"#).unwrap_err()),
            error("bad_request", "the frame needs a string field `type`")
        );
        let invalid = frame(decode("nope").unwrap_err());
        assert_eq!(invalid["type"], "error");
        assert_eq!(invalid["code"], "invalid_json");
    }

    #[test]
    fn pet_refusals_are_exact_error_frames() {
        // Someone else's pet and a missing one: one answer, the same as HTTP's 404 body.
        assert_eq!(frame(PetError::NotOwner), error("not_found", "no such pet"));
        assert_eq!(frame(NO_SUCH_PET), error("not_found", "no such pet"));
        assert_eq!(
            frame(PetError::Dead),
            error("pet_dead", "this pet has died")
        );
        assert_eq!(
            frame(PetError::OwnPet),
            error("own_pet", "you cannot give a treat to your own pet")
        );
    }

    #[test]
    fn service_errors_keep_their_code_and_hide_causes() {
        assert_eq!(
            frame(AppError::NoTreats),
            error("no_treats", "you have no treats left")
        );
        assert_eq!(
            frame(AppError::NotActive("that pet is not on anyone's screen")),
            error("not_active", "that pet is not on anyone's screen")
        );
        assert_eq!(
            frame(AppError::Unavailable("connection refused".into())),
            error(
                "service_unavailable",
                "the database is unavailable; try again shortly"
            )
        );
        assert_eq!(
            frame(AppError::Internal("secret".into())),
            error("internal", "something went wrong on our side")
        );
    }
}
