//! The one form behind every account page: log in, sign up, forgot and reset password, and
//! the settings (password, email, log out everywhere, delete account). Its inputs are a list
//! of [`FieldSpec`]s, checked in the browser on submit; it shows the server's answer (a
//! sentence on top, a message under each field) and a success note. One component instead
//! of one per page, because every form compiled separately costs WASM size.

use crate::api;
use futures::future::LocalBoxFuture;
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::collections::BTreeMap;

// The server's rule for new passwords, so the form can say it before sending.
pub use livepet_shared::rules::{PASSWORD_MAX, PASSWORD_MIN};

/// What the browser checks about a field before the form is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Nothing: the server's answer is shown as it is (log in, sign up).
    Server,
    /// Something typed (a current password).
    Filled,
    /// The length rule of new passwords.
    NewPassword,
    /// Looks like an email address.
    Email,
}

/// What is wrong with `value`, in the form's words; `None` when it may be sent.
pub fn problem(check: Check, value: &str) -> Option<String> {
    let n = value.chars().count();
    match check {
        Check::Server => None,
        Check::Filled if value.is_empty() => Some("Enter your password".into()),
        Check::NewPassword if n < PASSWORD_MIN => {
            Some(format!("At least {PASSWORD_MIN} characters ({n} so far)"))
        }
        Check::NewPassword if n > PASSWORD_MAX => {
            Some(format!("At most {PASSWORD_MAX} characters ({n} now)"))
        }
        Check::Email if !value.trim().contains('@') || value.trim().contains(' ') => {
            Some("Enter an email address like name@example.com".into())
        }
        _ => None,
    }
}

/// One input of a form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// The field's key in the server's `fields` messages (the body's field name).
    pub name: &'static str,
    /// The input's `id` and `data-testid`, unique on its page; its message is `{id}-error`.
    pub id: &'static str,
    pub label: &'static str,
    /// The input's `type`; an `email` value is sent trimmed.
    pub kind: &'static str,
    pub autocomplete: &'static str,
    pub check: Check,
}

/// What the server said about a refused attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormErrors {
    /// Shown above the fields.
    pub message: Option<String>,
    /// Shown under the field of the same name (`email`, `password`).
    pub fields: BTreeMap<String, String>,
}

impl FormErrors {
    /// The form's view of a refused call. On a form that asks for the user's password, a
    /// 401 means that password was wrong (not that the session ended): it goes under the
    /// field `password`.
    pub fn of(e: &api::Error, password: Option<&'static str>) -> FormErrors {
        match password {
            Some(field) if e.status() == Some(401) => {
                let mut fields = BTreeMap::new();
                fields.insert(field.to_string(), "wrong password".to_string());
                FormErrors {
                    message: None,
                    fields,
                }
            }
            _ => FormErrors {
                message: Some(e.message()),
                fields: e.fields(),
            },
        }
    }
}

/// The page's side of a form: busy while its call runs, the refusal, the success note.
#[derive(Debug, Clone, Copy)]
pub struct FormState {
    pub busy: RwSignal<bool>,
    pub errors: RwSignal<FormErrors>,
    pub done: RwSignal<Option<String>>,
}

impl Default for FormState {
    fn default() -> Self {
        Self::new()
    }
}

impl FormState {
    pub fn new() -> Self {
        FormState {
            busy: RwSignal::new(false),
            errors: RwSignal::new(FormErrors::default()),
            done: RwSignal::new(None),
        }
    }

    /// Runs `call`, then `ok` if it succeeded; a refusal is shown on the form (see
    /// [`FormErrors::of`] for `password`). Boxed, so every form shares this code.
    pub fn run(
        self,
        call: LocalBoxFuture<'static, Result<(), api::Error>>,
        password: Option<&'static str>,
        ok: Box<dyn FnOnce()>,
    ) {
        self.busy.set(true);
        self.errors.set(FormErrors::default());
        self.done.set(None);
        spawn_local(async move {
            let result = call.await;
            self.busy.try_set(false);
            match result {
                Ok(()) => ok(),
                Err(e) => {
                    self.errors.try_set(FormErrors::of(&e, password));
                }
            }
        });
    }
}

/// `N` values of a form, in the order of its fields (empty strings if it had fewer).
pub fn values<const N: usize>(v: Vec<String>) -> [String; N] {
    v.try_into()
        .unwrap_or_else(|_| std::array::from_fn(|_| String::new()))
}

#[component]
pub fn AccountForm(
    /// The inputs, in order; `on_submit` gets their values in the same order.
    fields: &'static [FieldSpec],
    /// The button's text.
    action: &'static str,
    /// The button's text while the call runs.
    busy_text: &'static str,
    /// Called with the values once every browser check passes.
    on_submit: Callback<Vec<String>>,
    /// True while the page waits for the server.
    #[prop(into, optional)]
    busy: Signal<bool>,
    /// The server's answer to the last attempt.
    #[prop(into, optional)]
    errors: Signal<FormErrors>,
    /// A success note above the fields; when one comes, the inputs are emptied.
    #[prop(into, optional)]
    done: Signal<Option<String>>,
    /// Extra classes of the `<form>`, e.g. "card".
    #[prop(optional)]
    class: &'static str,
    /// A red button: the action cannot be undone.
    #[prop(optional)]
    danger: bool,
    /// The form's `data-testid`.
    #[prop(optional)]
    testid: &'static str,
    /// Shown between the inputs and the button (a checkbox, a link).
    #[prop(optional)]
    children: Option<Children>,
) -> impl IntoView {
    let inputs: Vec<RwSignal<String>> = fields
        .iter()
        .map(|_| RwSignal::new(String::new()))
        .collect();
    // The browser's own findings, by field index; set on submit, cleared by typing.
    let local = RwSignal::new(vec![None::<String>; fields.len()]);
    let emptied = inputs.clone();
    Effect::new(move |_| {
        if done.with(Option::is_some) {
            for input in &emptied {
                input.set(String::new());
            }
        }
    });
    let sent = inputs.clone();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let values: Vec<String> = fields
            .iter()
            .zip(&sent)
            .map(|(f, v)| {
                let v = v.get_untracked();
                if f.kind == "email" {
                    v.trim().to_string()
                } else {
                    v
                }
            })
            .collect();
        let found: Vec<Option<String>> = fields
            .iter()
            .zip(&values)
            .map(|(f, v)| problem(f.check, v))
            .collect();
        let ok = found.iter().all(Option::is_none);
        local.set(found);
        if ok {
            on_submit.run(values);
        }
    };
    let rows = fields
        .iter()
        .zip(inputs)
        .enumerate()
        .map(|(i, (&spec, value))| {
            let error = Signal::derive(move || {
                local
                    .with(|l| l.get(i).cloned().flatten())
                    .or_else(|| errors.with(|e| e.fields.get(spec.name).cloned()))
            });
            let on_input = move |ev| {
                value.set(event_target_value(&ev));
                local.update(|l| {
                    if let Some(slot) = l.get_mut(i) {
                        *slot = None;
                    }
                });
            };
            field(spec, value, error, on_input)
        })
        .collect_view();
    view! {
        <form class=format!("form {class}") on:submit=submit novalidate=true data-testid=testid>
            {note("form-done", "status", "form-done", done)}
            {note(
                "form-error",
                "alert",
                "form-error",
                Signal::derive(move || errors.with(|e| e.message.clone())),
            )}
            {rows}
            {children.map(|c| c())}
            <button
                type="submit"
                class=if danger { "button danger wide" } else { "button primary wide" }
                data-testid="submit"
                disabled=busy
            >
                {move || if busy.get() { busy_text } else { action }}
            </button>
        </form>
    }
}

/// One labelled input with its message underneath (the browser's or the server's).
fn field(
    spec: FieldSpec,
    value: RwSignal<String>,
    error: Signal<Option<String>>,
    on_input: impl Fn(leptos::ev::Event) + 'static,
) -> impl IntoView {
    let FieldSpec {
        id,
        label,
        kind,
        autocomplete,
        ..
    } = spec;
    view! {
        <div class="field" class:invalid=move || error.with(Option::is_some)>
            <label for=id>{label}</label>
            <input
                id=id
                name=spec.name
                type=kind
                autocomplete=autocomplete
                required=true
                data-testid=id
                aria-invalid=move || error.with(Option::is_some).to_string()
                prop:value=move || value.get()
                on:input=on_input
            />
            {note(
                "field-error",
                "alert",
                format!("{id}-error"),
                Signal::derive(move || error.with(|e| e.as_deref().map(api::capitalize))),
            )}
        </div>
    }
}

/// A paragraph with `text`, while there is one. One function for every message of the
/// form, so the WASM holds one copy of its rendering code.
fn note(
    class: &'static str,
    role: &'static str,
    testid: impl Into<String>,
    text: Signal<Option<String>>,
) -> impl IntoView {
    let testid = testid.into();
    move || {
        text.get().map(|text| {
            view! {
                <p class=class role=role data-testid=testid.clone()>
                    {text}
                </p>
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_speak_before_the_server_does() {
        assert_eq!(problem(Check::Server, ""), None);
        assert_eq!(
            problem(Check::Filled, ""),
            Some("Enter your password".into())
        );
        assert_eq!(problem(Check::Filled, "x"), None);
        assert_eq!(
            problem(Check::NewPassword, "short"),
            Some("At least 12 characters (5 so far)".into())
        );
        assert_eq!(problem(Check::NewPassword, &"ż".repeat(12)), None);
        assert_eq!(problem(Check::NewPassword, &"x".repeat(72)), None);
        assert_eq!(
            problem(Check::NewPassword, &"x".repeat(73)),
            Some("At most 72 characters (73 now)".into())
        );
        assert_eq!(problem(Check::Email, " ada@example.com "), None);
        assert!(problem(Check::Email, "ada").is_some());
        assert!(problem(Check::Email, "a da@example.com").is_some());
        assert!(problem(Check::Email, "").is_some());
    }

    #[test]
    fn a_wrong_password_is_a_field_message_not_a_logout() {
        let e = api::error_from(
            401,
            r#"{"error":{"code":"unauthorized","message":"wrong password"}}"#,
            None,
        );
        let on_form = FormErrors::of(&e, Some("current_password"));
        assert_eq!(on_form.message, None);
        assert_eq!(
            on_form.fields.get("current_password").map(String::as_str),
            Some("wrong password")
        );
        assert_eq!(
            FormErrors::of(&e, None).message.as_deref(),
            Some("Wrong password.")
        );
    }

    #[test]
    fn values_come_in_field_order() {
        let [a, b] = values::<2>(vec!["a".into(), "b".into()]);
        assert_eq!((a.as_str(), b.as_str()), ("a", "b"));
        let [c] = values::<1>(Vec::new());
        assert_eq!(c, "");
    }
}
