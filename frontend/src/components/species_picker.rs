//! The species picker: a radio group of pictures; the chosen one is highlighted.

use crate::components::PetArt;
use leptos::prelude::*;
use livepet_shared::Species;

#[component]
pub fn SpeciesPicker(
    /// The chosen species; the picker writes it.
    selected: RwSignal<Option<Species>>,
    /// A message to show under the picker (the server's `species` field error).
    #[prop(into, optional)]
    error: Signal<Option<String>>,
) -> impl IntoView {
    view! {
        <fieldset class="species-picker" data-testid="species-picker">
            <legend>"Species"</legend>
            <div class="species-grid">
                {Species::ALL
                    .into_iter()
                    .map(|s| {
                        let is_selected = move || selected.get() == Some(s);
                        view! {
                            <label
                                class="species-option"
                                class:selected=is_selected
                                data-testid=format!("species-{}", s.as_str())
                            >
                                <input
                                    type="radio"
                                    name="species"
                                    value=s.as_str()
                                    prop:checked=is_selected
                                    on:change=move |_| selected.set(Some(s))
                                />
                                <PetArt species=s label=s.label() size="small" />
                                <span class="species-label">{s.label()}</span>
                            </label>
                        }
                    })
                    .collect_view()}
            </div>
            <Show when=move || error.with(Option::is_some)>
                <p class="field-error" role="alert">
                    {move || error.get()}
                </p>
            </Show>
        </fieldset>
    }
}
