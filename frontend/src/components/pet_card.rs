//! One pet in the "Your pets" grid: its picture, name, alive or dead badge and birthday,
//! linking to its page.

use crate::components::PetArt;
use crate::fmt;
use leptos::prelude::*;
use livepet_shared::wire::PetView;

#[component]
pub fn PetCard(pet: PetView) -> impl IntoView {
    let href = format!("/pets/{}", pet.id);
    let label = format!("{} the {}", pet.name, pet.species.as_str());
    let alive = pet.alive;
    view! {
        <a
            class=if alive { "pet-card" } else { "pet-card dead" }
            href=href
            data-testid=format!("pet-card-{}", pet.id)
        >
            <PetArt species=pet.species label=label dead=!alive size="medium" />
            <span class="pet-card-body">
                <span class="pet-card-name" data-testid="pet-card-name">
                    {pet.name.clone()}
                </span>
                <span class="pet-card-meta">
                    {if alive {
                        view! { <span class="badge alive" data-testid="badge">"Alive"</span> }
                    } else {
                        view! { <span class="badge dead" data-testid="badge">"Dead"</span> }
                    }}
                    <span class="birthday">"Born " {fmt::date(pet.born_at)}</span>
                </span>
            </span>
        </a>
    }
}
