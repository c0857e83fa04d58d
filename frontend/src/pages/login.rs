//! `/login`: log in with email and password.

use super::credentials::{CredentialsPage, Switch};
use crate::api;
use crate::components::AuthMode;
use leptos::prelude::*;

#[component]
pub fn LoginPage() -> impl IntoView {
    view! {
        <CredentialsPage
            mode=AuthMode::LogIn
            title="Welcome back"
            lead="Log in to see how your pets are doing."
            switch=Switch { question: "New here? ", link: "Create an account", to: "/signup" }
            welcome="Welcome back!"
            call=api::login
        />
    }
}
