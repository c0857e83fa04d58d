//! The WebSocket edge: the upgrade at `/ws` (Origin and session checks), the frame protocol,
//! and the per-tab session actor.

pub mod protocol;
pub mod session;
pub mod upgrade;
