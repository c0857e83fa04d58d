//! `/forgot-password`: ask for a link to reset the password. The answer is the same whether
//! or not the address has an account, so the page cannot tell who has one.

use crate::api;
use crate::components::{values, AccountForm, Check, FieldSpec, FormState};
use leptos::prelude::*;

const FIELDS: [FieldSpec; 1] = [FieldSpec {
    name: "email",
    id: "email",
    label: "Email",
    kind: "email",
    autocomplete: "email",
    check: Check::Email,
}];

#[component]
pub fn ForgotPasswordPage() -> impl IntoView {
    let state = FormState::new();
    let on_submit = Callback::new(move |v| {
        let [email] = values(v);
        state.run(
            Box::pin(api::request_reset(email)),
            None,
            Box::new(move || {
                state.done.set(Some(
                    "If an account exists for that address, we sent a link to reset its password."
                        .into(),
                ))
            }),
        );
    });
    view! {
        <section class="auth-page" data-testid="forgot-password-page">
            <h1>"Forgot your password?"</h1>
            <p class="lead">"Tell us your email address and we send you a link to choose a new one."</p>
            <AccountForm
                fields=&FIELDS
                action="Send me a link"
                busy_text="Sending…"
                on_submit
                busy=state.busy
                errors=state.errors
                done=state.done
                class="card"
                testid="forgot-form"
            />
            <p class="switch">"Remembered it? " <a href="/login">"Log in"</a></p>
        </section>
    }
}
