//! "Active pets": other people's pets that are on someone's screen right now, each with a
//! "Give treat (N left)" button.

use crate::components::PetArt;
use leptos::prelude::*;
use livepet_shared::wire::ActivePet;
use livepet_shared::PetId;

#[component]
pub fn ActivePetsList(
    /// The pets to list (already without the user's own).
    #[prop(into)]
    pets: Signal<Vec<ActivePet>>,
    /// The user's treats; the buttons are disabled at 0.
    #[prop(into)]
    treats: Signal<u32>,
    /// False while the connection is down: clicks could not be delivered.
    #[prop(into)]
    enabled: Signal<bool>,
    /// Called with the pet's id when a treat is given.
    on_treat: Callback<PetId>,
) -> impl IntoView {
    view! {
        <section class="active-pets" data-testid="active-pets" aria-labelledby="active-pets-title">
            <h2 id="active-pets-title">
                "Active pets" <span class="treats-left" data-testid="treats">
                    {move || match treats.get() {
                        1 => "1 treat left".to_string(),
                        n => format!("{n} treats left"),
                    }}
                </span>
            </h2>
            <Show
                when=move || pets.with(|p| !p.is_empty())
                fallback=|| {
                    view! {
                        <p class="empty-note" data-testid="nobody-around">
                            "Nobody's around"
                        </p>
                    }
                }
            >
                <ul class="active-list">
                    <For
                        each=move || pets.get()
                        key=|p| (p.id, p.name.clone())
                        children=move |p| {
                            let id = p.id;
                            let label = format!("{} the {}", p.name, p.species.as_str());
                            let aria = format!("Give {} a treat", p.name);
                            view! {
                                <li class="active-pet" data-testid=format!("active-pet-{id}")>
                                    <PetArt species=p.species label=label size="small" />
                                    <span class="active-pet-name">{p.name.clone()}</span>
                                    <button
                                        class="button treat"
                                        data-testid=format!("give-treat-{id}")
                                        aria-label=aria
                                        disabled=move || treats.get() == 0 || !enabled.get()
                                        on:click=move |_| on_treat.run(id)
                                    >
                                        {move || format!("Give treat ({} left)", treats.get())}
                                    </button>
                                </li>
                            }
                        }
                    />
                </ul>
            </Show>
        </section>
    }
}
