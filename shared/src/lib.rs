//! Everything the LivePet server and browser must agree on: the pet rules and the JSON wire
//! contract. Depends on serde alone so both the native server and the WASM app can use it.

pub mod ids;
pub mod rules;
pub mod species;
pub mod text;
pub mod wire;

pub use ids::{PetId, UserId};
pub use rules::{PetState, Rules};
pub use species::Species;
