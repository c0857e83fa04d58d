//! Operations that HTTP and WebSocket both use: accounts and sessions, pets, treats. Plain
//! async methods on [`Services`], tested through the real server; the edges (`api/`, `ws/`)
//! only translate requests and frames into these calls and their answers back.

pub mod accounts;
pub mod canonical;
pub mod limits;
pub mod mail;
pub mod pets;
pub mod sockets;
pub mod treats;

use crate::actors::presence::Presence;
use crate::cluster::Cluster;
use crate::db::{self, DbConn, DbPool};
use crate::error::AppError;
use crate::world::World;
use accounts::Accounts;
use actix::Addr;
use sockets::LiveSockets;
use std::sync::Arc;

/// What the operations run on.
pub struct Services {
    pub world: Arc<World>,
    pub pool: DbPool,
    pub presence: Addr<Presence>,
    pub accounts: Accounts,
    /// The open WebSockets of each session, closed when it ends.
    pub live: LiveSockets,
    /// Per-user limits: live pets, adoptions, sockets, watched pets, frames.
    pub limits: limits::UserLimits,
    /// Outgoing mail: `mailer.send(Mail { to, subject, text })` queues and returns at once.
    pub mailer: mail::Mailer,
    /// The links mails carry (`links.reset_password(token)`), on `--public-url`.
    pub links: mail::Links,
    /// Cluster mode: reaches pets owned by other nodes. `None` on a single node.
    pub cluster: Option<Arc<Cluster>>,
}

impl Services {
    /// Runs database work on the blocking pool (see [`db::run`]).
    pub async fn db<T, F>(&self, f: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, AppError> + Send + 'static,
    {
        db::run(&self.pool, f).await
    }
}
