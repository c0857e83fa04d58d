//! One component per screen; `app.rs` picks one by URL (`/` only redirects, see
//! `app::shown`). Pages load over HTTP with [`crate::load::load`] and take live data from
//! the socket's signals; none opens or closes the socket.

pub mod confirm_email;
pub mod credentials;
pub mod dashboard;
pub mod forgot_password;
pub mod login;
pub mod new_pet;
pub mod not_found;
pub mod pet;
pub mod pets;
pub mod reset_password;
pub mod settings;
pub mod signup;

pub use confirm_email::ConfirmEmailPage;
pub use dashboard::DashboardPage;
pub use forgot_password::ForgotPasswordPage;
pub use login::LoginPage;
pub use new_pet::NewPetPage;
pub use not_found::NotFound;
pub use pet::PetPage;
pub use pets::PetsPage;
pub use reset_password::ResetPasswordPage;
pub use settings::SettingsPage;
pub use signup::SignupPage;
