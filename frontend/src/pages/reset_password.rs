//! `/reset-password/:token`: the page a reset mail links to. Choose a new password; every
//! session of the account ends, and the user logs in again with the new one.

use crate::api;
use crate::auth::Auth;
use crate::components::{values, AccountForm, Check, FieldSpec, FormState};
use crate::toasts::Toasts;
use crate::ws::WsClient;
use leptos::prelude::*;
use leptos_router::hooks::use_navigate;
use livepet_shared::wire::ErrorCode;

const FIELDS: [FieldSpec; 1] = [FieldSpec {
    name: "password",
    id: "new-password",
    label: "New password (12 to 72 characters)",
    kind: "password",
    autocomplete: "new-password",
    check: Check::NewPassword,
}];

#[component]
pub fn ResetPasswordPage(
    /// The token of the link.
    token: String,
) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let ws = expect_context::<WsClient>();
    let toasts = expect_context::<Toasts>();
    let navigate = use_navigate();
    let state = FormState::new();
    // The server no longer knows the link (used, expired, mistyped).
    let bad_link = RwSignal::new(false);
    let on_submit = Callback::new(move |v| {
        let [password] = values(v);
        let token = token.clone();
        let navigate = navigate.clone();
        // If this tab is logged in to the same account, its session ends too: the socket's
        // close is no news, this page says what happened.
        ws.expect_end(true);
        state.run(
            Box::pin(async move {
                let result = api::reset_password(&token, password).await;
                if let Err(e) = &result {
                    ws.expect_end(false);
                    bad_link.try_set(e.code() == Some(ErrorCode::InvalidToken));
                }
                result
            }),
            None,
            Box::new(move || {
                leptos::task::spawn_local(async move {
                    // Still logged in means another account's session, which goes on.
                    let still = api::me().await.ok().flatten();
                    if still.is_some() {
                        ws.expect_end(false);
                    }
                    navigate("/login", Default::default());
                    auth.user.try_set(still);
                    toasts.info("Your password was changed; log in with the new one.");
                });
            }),
        );
    });
    view! {
        <section class="auth-page" data-testid="reset-password-page">
            <h1>"Choose a new password"</h1>
            {move || {
                if bad_link.get() {
                    view! {
                        <p class="form-error" role="alert" data-testid="invalid-link">
                            "This link is invalid or has expired. Links work once, for a day."
                        </p>
                        <p class="switch">
                            <a class="button primary" href="/forgot-password">
                                "Send me a new link"
                            </a>
                        </p>
                    }
                        .into_any()
                } else {
                    view! {
                        <p class="lead">"Every browser logged in to your account will be logged out."</p>
                        <AccountForm
                            fields=&FIELDS
                            action="Set new password"
                            busy_text="Saving…"
                            on_submit
                            busy=state.busy
                            errors=state.errors
                            class="card"
                            testid="reset-form"
                        />
                    }
                        .into_any()
                }
            }}
        </section>
    }
}
