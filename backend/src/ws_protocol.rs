//! Decoding client frames into `ClientMsg`, with the error code each kind of bad frame earns.
//! Plain functions, tested without sockets; the session only calls `decode`.

use livepet_shared::wire::{ClientMsg, ErrorCode};

/// The `type`s a client may send.
const KNOWN_TYPES: [&str; 6] = [
    "watch",
    "unwatch",
    "feed",
    "give_treat",
    "ping",
    "subscribe_stats",
];

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub code: ErrorCode,
    pub message: String,
}

/// Parses one text frame: `invalid_json` if it is not JSON, `unknown_type` if its `type` is
/// not one we know, `bad_request` if the fields are missing or of the wrong type.
pub fn decode(text: &str) -> Result<ClientMsg, FrameError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| FrameError {
        code: ErrorCode::InvalidJson,
        message: format!("the frame is not JSON: {e}"),
    })?;
    let Some(kind) = value.get("type").and_then(|t| t.as_str()) else {
        return Err(FrameError {
            code: ErrorCode::BadRequest,
            message: "the frame needs a string field `type`".into(),
        });
    };
    if !KNOWN_TYPES.contains(&kind) {
        return Err(FrameError {
            code: ErrorCode::UnknownType,
            message: format!(
                "unknown frame type `{}`",
                kind.chars().take(40).collect::<String>()
            ),
        });
    }
    // Deserializing from a reference keeps `kind` (borrowed from `value`) usable below.
    <ClientMsg as serde::Deserialize>::deserialize(&value).map_err(|e| FrameError {
        code: ErrorCode::BadRequest,
        message: format!("bad `{kind}` frame: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use livepet_shared::PetId;

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
}
