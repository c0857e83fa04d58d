//! The "New pet" form: a name checked as you type against the shared rule (the one the
//! server applies) and a species picker. It only collects and validates; the page sends it.

use crate::components::SpeciesPicker;
use leptos::prelude::*;
use livepet_shared::rules::{pet_name_problem, NameProblem, PET_NAME_MAX, PET_NAME_MIN};
use livepet_shared::wire::NewPet;
use livepet_shared::Species;
use std::collections::BTreeMap;

/// What is wrong with a name, in the form's words; `None` when the server will take it.
pub fn name_error(name: &str) -> Option<String> {
    pet_name_problem(name).map(|problem| match problem {
        NameProblem::TooShort(n) => format!("At least {PET_NAME_MIN} characters ({n} so far)"),
        NameProblem::TooLong(n) => format!("At most {PET_NAME_MAX} characters ({n} now)"),
        NameProblem::ControlCharacter => "No control characters, please".into(),
        NameProblem::FormatCharacter => {
            "No invisible formatting characters (zero-width, right-to-left), please".into()
        }
        NameProblem::Invisible => "The name needs something visible in it".into(),
    })
}

#[component]
pub fn NewPetForm(
    /// Called with a valid pet when the user saves.
    on_submit: Callback<NewPet>,
    /// True while the page is saving; the button waits.
    #[prop(into, optional)]
    busy: Signal<bool>,
    /// The server's field messages (`name`, `species`) from a refused save.
    #[prop(into, optional)]
    server_errors: Signal<BTreeMap<String, String>>,
) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let touched = RwSignal::new(false);
    let species = RwSignal::new(None::<Species>);
    let local_error = Memo::new(move |_| name.with(|n| name_error(n)));
    let name_message = Memo::new(move |_| {
        if touched.get() {
            if let Some(e) = local_error.get() {
                return Some(e);
            }
        }
        server_errors.with(|f| f.get("name").cloned())
    });
    let species_message = Signal::derive(move || server_errors.with(|f| f.get("species").cloned()));
    let can_save =
        move || local_error.with(Option::is_none) && species.with(Option::is_some) && !busy.get();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        touched.set(true);
        if let (None, Some(s)) = (local_error.get_untracked(), species.get_untracked()) {
            on_submit.run(NewPet {
                name: name.get_untracked().trim().to_string(),
                species: s.as_str().to_string(),
            });
        }
    };
    view! {
        <form class="card form" on:submit=submit novalidate=true data-testid="new-pet-form">
            <div class="field" class:invalid=move || name_message.with(Option::is_some)>
                <label for="pet-name">"Name"</label>
                <input
                    id="pet-name"
                    name="name"
                    type="text"
                    autocomplete="off"
                    placeholder="e.g. Biscuit"
                    maxlength="120"
                    data-testid="pet-name-input"
                    aria-describedby="pet-name-help"
                    aria-invalid=move || name_message.with(Option::is_some).to_string()
                    prop:value=move || name.get()
                    on:input=move |ev| {
                        name.set(event_target_value(&ev));
                        touched.set(true);
                    }
                />
                <p id="pet-name-help" class="field-help">
                    {move || match name_message.get() {
                        Some(e) => {
                            view! {
                                <span class="field-error" data-testid="name-error" role="alert">
                                    {e}
                                </span>
                            }
                                .into_any()
                        }
                        None => {
                            view! {
                                <span class="field-hint">
                                    {move || {
                                        format!(
                                            "{} / {PET_NAME_MAX} characters",
                                            name.with(|n| n.trim().chars().count()),
                                        )
                                    }}
                                </span>
                            }
                                .into_any()
                        }
                    }}
                </p>
            </div>
            <p class="field-hint" data-testid="name-is-public">
                "Everyone sees your pet's name while it is on screen, so pick one you are happy to share."
            </p>
            <SpeciesPicker selected=species error=species_message />
            <div class="form-actions">
                <a class="button ghost" href="/pets">
                    "Cancel"
                </a>
                <button
                    type="submit"
                    class="button primary"
                    data-testid="save-pet"
                    disabled=move || !can_save()
                >
                    {move || if busy.get() { "Saving…" } else { "Adopt" }}
                </button>
            </div>
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_three_to_a_hundred_characters_after_trimming() {
        assert_eq!(
            name_error(""),
            Some("At least 3 characters (0 so far)".into())
        );
        assert_eq!(
            name_error("  ab  "),
            Some("At least 3 characters (2 so far)".into())
        );
        assert_eq!(name_error("abc"), None);
        assert_eq!(name_error("Żółw"), None);
        assert_eq!(name_error(&"x".repeat(100)), None);
        assert_eq!(
            name_error(&"x".repeat(101)),
            Some("At most 100 characters (101 now)".into())
        );
        assert_eq!(
            name_error("ab\u{7}c"),
            Some("No control characters, please".into())
        );
    }
}
