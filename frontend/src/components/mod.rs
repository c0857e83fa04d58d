//! Reusable pieces of the pages, one component per file. They take their data as props (not
//! from context) wherever that keeps them testable in isolation.

pub mod account_form;
pub mod active_pets;
pub mod auth_form;
pub mod conn_status;
pub mod header;
pub mod hearts;
pub mod pet_art;
pub mod pet_card;
pub mod pet_form;
pub mod sparkline;
pub mod species_picker;
pub mod toast_list;

pub use account_form::{values, AccountForm, Check, FieldSpec, FormErrors, FormState};
pub use active_pets::ActivePetsList;
pub use auth_form::{AuthForm, AuthMode};
pub use conn_status::ConnIndicator;
pub use header::Header;
pub use hearts::Hearts;
pub use pet_art::PetArt;
pub use pet_card::PetCard;
pub use pet_form::NewPetForm;
pub use sparkline::Sparkline;
pub use species_picker::SpeciesPicker;
pub use toast_list::ToastList;
