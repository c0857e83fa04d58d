//! `/confirm-email/:token`: the page a confirmation mail links to. It confirms the new
//! address as it opens (logged in or not) and says how that went.

use crate::api;
use crate::auth::Auth;
use crate::load::load;
use leptos::prelude::*;
use livepet_shared::wire::ErrorCode;

/// What the page says about the server's answer.
pub fn outcome(result: &Result<(), api::Error>) -> (bool, String) {
    match result {
        Ok(()) => (true, "Your email address is changed. Use the new one to log in.".into()),
        Err(e) => (
            false,
            match e.code() {
                Some(ErrorCode::InvalidToken) => {
                    "This confirmation link is invalid or has expired. Ask for the change again in your settings.".into()
                }
                Some(ErrorCode::EmailTaken) => {
                    "That address now belongs to another account, so your email was not changed.".into()
                }
                _ => e.message(),
            },
        ),
    }
}

#[component]
pub fn ConfirmEmailPage(
    /// The token of the link.
    token: String,
) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let answer = load(async move {
        let result = api::confirm_email(&token).await;
        if result.is_ok() {
            // The header shows the email of whoever is logged in here: take the new one.
            if let Ok(Some(user)) = api::me().await {
                auth.user.try_set(Some(user));
            }
        }
        result
    });
    view! {
        <section class="auth-page" data-testid="confirm-email-page">
            <h1>"Confirm your new email"</h1>
            {move || match answer.with(|a| a.as_ref().map(outcome)) {
                None => view! { <p class="loading">"Confirming…"</p> }.into_any(),
                Some((ok, text)) => {
                    view! {
                        <p
                            class=if ok { "form-done" } else { "form-error" }
                            role="status"
                            data-testid="confirm-result"
                        >
                            {text}
                        </p>
                        <p class="switch">
                            <a class="button primary" href="/">
                                "Continue"
                            </a>
                        </p>
                    }
                        .into_any()
                }
            }}
        </section>
    }
}
