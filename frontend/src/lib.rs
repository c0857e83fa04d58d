//! The LivePet single-page app: Leptos components rendered in the browser, talking JSON to
//! `/api` and frames to `/ws`. A library so the browser tests can mount single components.

pub mod api;
pub mod app;
pub mod auth;
pub mod components;
pub mod fmt;
pub mod frames;
pub mod load;
pub mod pages;
pub mod toasts;
pub mod ws;

pub use app::App;
