//! `/signup`: create an account, which logs it in.

use super::credentials::{CredentialsPage, Switch};
use crate::api;
use crate::components::AuthMode;
use leptos::prelude::*;

#[component]
pub fn SignupPage() -> impl IntoView {
    view! {
        <CredentialsPage
            mode=AuthMode::SignUp
            title="Adopt a live pet"
            lead="Every pet ages and gets hungry while you watch. Create an account to adopt one."
            switch=Switch { question: "Already have an account? ", link: "Log in", to: "/login" }
            welcome="Welcome to LivePet! Your account is ready."
            call=api::register
        />
    }
}
