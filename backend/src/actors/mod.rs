//! The actors of the pet world, one per file.

pub mod persister;
pub mod pet;
pub mod registry;
pub mod treat_refresher;
