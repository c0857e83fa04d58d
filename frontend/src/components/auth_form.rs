//! The sign-up and log-in form: email, password and "Keep me logged in" (plus, to log in,
//! the way to a forgotten password), with the server's per-field messages shown under each
//! field and its general message (wrong credentials, rate limit) on top. It is an
//! [`AccountForm`] whose values become [`Credentials`].

use super::account_form::{values, AccountForm, Check, FieldSpec, FormErrors};
use leptos::prelude::*;
use livepet_shared::wire::Credentials;

/// Which form it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    SignUp,
    LogIn,
}

const EMAIL: FieldSpec = FieldSpec {
    name: "email",
    id: "email",
    label: "Email",
    kind: "email",
    autocomplete: "email",
    check: Check::Server,
};

const SIGN_UP: [FieldSpec; 2] = [
    EMAIL,
    FieldSpec {
        name: "password",
        id: "password",
        label: "Password",
        kind: "password",
        autocomplete: "new-password",
        check: Check::Server,
    },
];

const LOG_IN: [FieldSpec; 2] = [
    EMAIL,
    FieldSpec {
        autocomplete: "current-password",
        ..SIGN_UP[1]
    },
];

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
    let remember = RwSignal::new(false);
    let (fields, action, busy_text): (&'static [FieldSpec], _, _) = match mode {
        AuthMode::SignUp => (&SIGN_UP, "Sign up", "Signing up…"),
        AuthMode::LogIn => (&LOG_IN, "Log in", "Logging in…"),
    };
    let on_submit = Callback::new(move |v: Vec<String>| {
        let [email, password] = values(v);
        on_submit.run(Credentials {
            email,
            password,
            remember: remember.get_untracked(),
        });
    });
    view! {
        <AccountForm
            fields
            action
            busy_text
            on_submit
            busy
            errors
            class="card auth-form"
            testid="auth-form"
        >
            <label class="check">
                <input
                    type="checkbox"
                    data-testid="remember"
                    prop:checked=move || remember.get()
                    on:change=move |ev| remember.set(event_target_checked(&ev))
                />
                "Keep me logged in"
            </label>
            {(mode == AuthMode::LogIn)
                .then(|| {
                    view! {
                        <a class="forgot" href="/forgot-password" data-testid="forgot-password">
                            "Forgot your password?"
                        </a>
                    }
                })}
        </AccountForm>
    }
}
