//! One component per screen; the router in `app.rs` picks one by URL. Pages load over HTTP
//! with [`crate::load::load`] and take live data from the socket's signals; none opens or
//! closes the socket.

pub mod credentials;
pub mod dashboard;
pub mod home;
pub mod login;
pub mod new_pet;
pub mod not_found;
pub mod pet;
pub mod pets;
pub mod signup;

pub use dashboard::DashboardPage;
pub use home::HomePage;
pub use login::LoginPage;
pub use new_pet::NewPetPage;
pub use not_found::NotFound;
pub use pet::PetPage;
pub use pets::PetsPage;
pub use signup::SignupPage;
