//! The actors of the pet world, one per file, with the messages each handles defined above
//! it. (The WebSocket session actor is the edge's: `ws/session.rs`.)

pub mod persister;
pub mod pet;
pub mod presence;
pub mod treat_refresher;

use livepet_shared::wire::ServerMsg;
use std::sync::Arc;

/// Encodes a frame once for many recipients: the one place server frames become JSON.
pub fn encode(msg: &ServerMsg) -> Option<Arc<str>> {
    match serde_json::to_string(msg) {
        Ok(s) => Some(s.into()),
        Err(e) => {
            log::error!("cannot encode a frame: {e}");
            None
        }
    }
}
