//! The WebSocket edge: the upgrade at `/ws` (Origin and session checks), the frame protocol,
//! the per-tab session actor and its heartbeat rule.

pub mod heartbeat;
pub mod protocol;
pub mod session;
pub mod upgrade;
