//! The actors of the pet world, one per file.

pub mod persister;
pub mod pet;
pub mod presence;
pub mod registry;
pub mod ticker;
pub mod treat_refresher;
pub mod viewer_session;
