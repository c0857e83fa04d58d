//! `/settings`: the account. Change the password (other sessions end), change the email
//! (through a link sent to the new address), log out everywhere, delete the account and
//! its pets. Every section is the one [`AccountForm`].

use crate::api;
use crate::auth::Auth;
use crate::components::{values, AccountForm, Check, FieldSpec, FormState};
use crate::toasts::Toasts;
use crate::ws::WsClient;
use futures::future::LocalBoxFuture;
use leptos::prelude::*;
use leptos_router::hooks::use_navigate;
use livepet_shared::wire::{ChangeEmail, ChangePassword};

const CURRENT: FieldSpec = FieldSpec {
    name: "current_password",
    id: "current-password",
    label: "Current password",
    kind: "password",
    autocomplete: "current-password",
    check: Check::Filled,
};

/// Change the password: the current one, then the new one.
pub const PASSWORD_FIELDS: [FieldSpec; 2] = [
    CURRENT,
    FieldSpec {
        name: "new_password",
        id: "new-password",
        label: "New password (12 to 72 characters)",
        kind: "password",
        autocomplete: "new-password",
        check: Check::NewPassword,
    },
];

/// Change the email: the current password, then the new address.
pub const EMAIL_FIELDS: [FieldSpec; 2] = [
    FieldSpec {
        id: "email-current-password",
        ..CURRENT
    },
    FieldSpec {
        name: "email",
        id: "new-email",
        label: "New email address",
        kind: "email",
        autocomplete: "email",
        check: Check::Email,
    },
];

/// Delete the account: the password.
pub const DELETE_FIELDS: [FieldSpec; 1] = [FieldSpec {
    name: "password",
    id: "delete-password",
    label: "Your password",
    ..CURRENT
}];

/// `call` ends this tab's own session: the server closing its socket is expected, unless
/// the call fails.
fn ending(
    ws: WsClient,
    call: LocalBoxFuture<'static, ApiResult>,
) -> LocalBoxFuture<'static, ApiResult> {
    ws.expect_end(true);
    Box::pin(async move {
        let result = call.await;
        if result.is_err() {
            ws.expect_end(false);
        }
        result
    })
}

type ApiResult = Result<(), api::Error>;

#[component]
pub fn SettingsPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let ws = expect_context::<WsClient>();
    let toasts = expect_context::<Toasts>();
    let navigate = use_navigate();
    // The session is over (everywhere, or with the account): to the login page, with a
    // message that outlives the navigation.
    let leave = move |message: &'static str| {
        let navigate = navigate.clone();
        Box::new(move || {
            // The URL first, then the user (see `app::SessionEnded`).
            navigate("/login", Default::default());
            auth.user.set(None);
            toasts.info(message);
        }) as Box<dyn FnOnce()>
    };

    let password = FormState::new();
    let change_password = Callback::new(move |v| {
        let [current_password, new_password] = values(v);
        password.run(
            Box::pin(api::change_password(ChangePassword {
                current_password,
                new_password,
            })),
            Some("current_password"),
            Box::new(move || {
                password.done.set(Some(
                    "Your password was changed. Your other sessions were logged out.".into(),
                ))
            }),
        );
    });

    let email = FormState::new();
    let change_email = Callback::new(move |v| {
        let [current_password, new_email] = values(v);
        let note = format!(
            "We sent a confirmation link to {new_email}; your email changes when you open it."
        );
        email.run(
            Box::pin(api::change_email(ChangeEmail {
                current_password,
                email: new_email,
            })),
            Some("current_password"),
            Box::new(move || email.done.set(Some(note))),
        );
    });

    let everywhere = FormState::new();
    let leave_everywhere = leave.clone();
    let log_out_everywhere = Callback::new(move |_| {
        everywhere.run(
            ending(ws, Box::pin(api::logout_everywhere())),
            None,
            leave_everywhere("You were logged out everywhere, this browser too."),
        );
    });

    let delete = FormState::new();
    let delete_account = Callback::new(move |v| {
        let [password] = values(v);
        delete.run(
            ending(ws, Box::pin(api::delete_account(password))),
            Some("password"),
            leave("Your account and all its pets were deleted."),
        );
    });

    let email_now = move || auth.user.with(|u| u.as_ref().map(|u| u.email.clone()));
    view! {
        <section class="settings-page" data-testid="settings">
            <h1>"Settings"</h1>
            <p class="lead">"Logged in as " <strong>{email_now}</strong> "."</p>

            <div class="card settings-section">
                <h2>"Change your password"</h2>
                <p class="muted">"Your other browsers and devices will be logged out."</p>
                <AccountForm
                    fields=&PASSWORD_FIELDS
                    action="Change password"
                    busy_text="Changing…"
                    on_submit=change_password
                    busy=password.busy
                    errors=password.errors
                    done=password.done
                    testid="change-password"
                />
            </div>

            <div class="card settings-section">
                <h2>"Change your email"</h2>
                <p class="muted">
                    "We send a link to the new address; your email changes when you open it."
                </p>
                <AccountForm
                    fields=&EMAIL_FIELDS
                    action="Change email"
                    busy_text="Sending…"
                    on_submit=change_email
                    busy=email.busy
                    errors=email.errors
                    done=email.done
                    testid="change-email"
                />
            </div>

            <div class="card settings-section">
                <h2>"Log out everywhere"</h2>
                <p class="muted">
                    "Ends every session of your account, on every browser and device, this one included."
                </p>
                <AccountForm
                    fields=&[]
                    action="Log out everywhere"
                    busy_text="Logging out…"
                    on_submit=log_out_everywhere
                    busy=everywhere.busy
                    errors=everywhere.errors
                    testid="logout-everywhere"
                />
            </div>

            <div class="card settings-section danger-zone">
                <h2>"Delete your account"</h2>
                <p class="warning" role="note">
                    "This deletes your account and all your pets, for good. It cannot be undone."
                </p>
                <AccountForm
                    fields=&DELETE_FIELDS
                    action="Delete my account and my pets"
                    busy_text="Deleting…"
                    on_submit=delete_account
                    busy=delete.busy
                    errors=delete.errors
                    danger=true
                    testid="delete-account"
                />
            </div>
        </section>
    }
}
