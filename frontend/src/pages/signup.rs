//! Sign up.

use crate::api;
use crate::auth::Auth;
use crate::components::{AuthForm, AuthMode, FormErrors};
use crate::ws::WsClient;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::{use_navigate, use_query_map};
use livepet_shared::wire::Credentials;

#[component]
pub fn SignupPage() -> impl IntoView {
    let busy = RwSignal::new(false);
    let errors = RwSignal::new(FormErrors::default());
    let navigate = use_navigate();
    let auth = expect_context::<Auth>();
    let ws = expect_context::<WsClient>();
    let query = use_query_map();
    let next = move || query.with_untracked(|q| q.get("next"));
    let on_submit = Callback::new(move |creds: Credentials| {
        busy.set(true);
        let navigate = navigate.clone();
        spawn_local(async move {
            let result = api::register(&creds).await;
            busy.try_set(false);
            match result {
                Ok(user) => {
                    super::logged_in(auth, ws, user);
                    navigate(&super::after_login(next()), Default::default());
                }
                Err(e) => {
                    errors.try_set(super::form_errors(&e));
                }
            }
        });
    });
    view! {
        <section class="auth-page">
            <h1>"Adopt a live pet"</h1>
            <p class="lead">
                "Every pet ages and gets hungry while you watch. Create an account to adopt one."
            </p>
            <AuthForm mode=AuthMode::SignUp on_submit busy errors />
            <p class="switch">"Already have an account? " <a href="/login">"Log in"</a></p>
        </section>
    }
}
