//! Log in.

use crate::api;
use crate::auth::Auth;
use crate::components::{AuthForm, AuthMode, FormErrors};
use crate::ws::WsClient;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::{use_navigate, use_query_map};
use livepet_shared::wire::Credentials;

#[component]
pub fn LoginPage() -> impl IntoView {
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
            let result = api::login(&creds).await;
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
    let signup_href = move || match query.with(|q| q.get("next")) {
        Some(n) => format!("/signup?next={n}"),
        None => "/signup".into(),
    };
    view! {
        <section class="auth-page">
            <h1>"Welcome back"</h1>
            <p class="lead">"Log in to see how your pets are doing."</p>
            <AuthForm mode=AuthMode::LogIn on_submit busy errors />
            <p class="switch">"New here? " <a href=signup_href>"Create an account"</a></p>
        </section>
    }
}
