//! The sign-up and log-in form: email and password, with the server's per-field messages
//! shown under each field and its general message (wrong credentials, rate limit) on top.

use leptos::prelude::*;
use livepet_shared::wire::Credentials;
use std::collections::BTreeMap;

/// Which form it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    SignUp,
    LogIn,
}

/// What the server said about a refused attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormErrors {
    /// Shown above the fields.
    pub message: Option<String>,
    /// Shown under the field of the same name (`email`, `password`).
    pub fields: BTreeMap<String, String>,
}

#[component]
pub fn AuthForm(
    mode: AuthMode,
    /// Called with what the user typed.
    on_submit: Callback<Credentials>,
    /// True while the page waits for the server.
    #[prop(into, optional)]
    busy: Signal<bool>,
    /// The server's answer to the last attempt.
    #[prop(into, optional)]
    errors: Signal<FormErrors>,
) -> impl IntoView {
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let (action, busy_text, pw_autocomplete) = match mode {
        AuthMode::SignUp => ("Sign up", "Signing up…", "new-password"),
        AuthMode::LogIn => ("Log in", "Logging in…", "current-password"),
    };
    let field_error = move |name: &'static str| errors.with(|e| e.fields.get(name).cloned());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        on_submit.run(Credentials {
            email: email.get_untracked().trim().to_string(),
            password: password.get_untracked(),
        });
    };
    view! {
        <form class="card form auth-form" on:submit=submit novalidate=true data-testid="auth-form">
            <Show when=move || errors.with(|e| e.message.is_some())>
                <p class="form-error" role="alert" data-testid="form-error">
                    {move || errors.with(|e| e.message.clone())}
                </p>
            </Show>
            <CredentialField
                name="email"
                label="Email"
                kind="email"
                autocomplete="email"
                value=email
                error=Signal::derive(move || field_error("email"))
            />
            <CredentialField
                name="password"
                label="Password"
                kind="password"
                autocomplete=pw_autocomplete
                value=password
                error=Signal::derive(move || field_error("password"))
            />
            <button type="submit" class="button primary wide" data-testid="submit" disabled=busy>
                {move || if busy.get() { busy_text } else { action }}
            </button>
        </form>
    }
}

/// One labelled input of the form with the server's message for it underneath. Its `id`,
/// `name` and `data-testid` are `name`; the message's test id is `{name}-error`.
#[component]
fn CredentialField(
    name: &'static str,
    label: &'static str,
    /// The input's `type`.
    kind: &'static str,
    autocomplete: &'static str,
    value: RwSignal<String>,
    /// The server's message about this field, if any.
    error: Signal<Option<String>>,
) -> impl IntoView {
    view! {
        <div class="field" class:invalid=move || error.with(Option::is_some)>
            <label for=name>{label}</label>
            <input
                id=name
                name=name
                type=kind
                autocomplete=autocomplete
                required=true
                data-testid=name
                aria-invalid=move || error.with(Option::is_some).to_string()
                prop:value=move || value.get()
                on:input=move |ev| value.set(event_target_value(&ev))
            />
            {move || {
                error
                    .get()
                    .map(|e| {
                        view! {
                            <p class="field-error" data-testid=format!("{name}-error") role="alert">
                                {crate::api::capitalize(&e)}
                            </p>
                        }
                    })
            }}
        </div>
    }
}
