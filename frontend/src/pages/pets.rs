//! `/pets`: the user's pets as cards, newest first, and the way to adopt another.

use crate::api;
use crate::components::PetCard;
use crate::load::load;
use crate::toasts::Toasts;
use leptos::prelude::*;
use livepet_shared::wire::PetView;

#[component]
pub fn PetsPage() -> impl IntoView {
    let toasts = expect_context::<Toasts>();
    let pets = load(async move { api::pets().await.inspect_err(|e| toasts.error(e.message())) });
    view! {
        <section class="pets-page">
            <div class="page-head">
                <h1>"Your pets"</h1>
                <a class="button primary" href="/pets/new" data-testid="new-pet">
                    "+ New pet"
                </a>
            </div>
            {move || match pets.get() {
                None => view! { <p class="loading">"Loading your pets…"</p> }.into_any(),
                // A failed load leaves a note in place of the list, never a blank page.
                Some(Err(e)) => {
                    view! {
                        <p class="empty-note" role="alert">
                            {e.message()}
                        </p>
                    }
                        .into_any()
                }
                Some(Ok(list)) => pet_list(list),
            }}
        </section>
    }
}

/// The cards, or the invitation to adopt a first pet.
fn pet_list(pets: Vec<PetView>) -> AnyView {
    if pets.is_empty() {
        return view! {
            <div class="empty-state card" data-testid="no-pets">
                <p class="empty-title">"No pets yet"</p>
                <p>"Adopt your first pet: it starts living the moment you name it."</p>
                <a class="button primary" href="/pets/new">
                    "Adopt your first pet"
                </a>
            </div>
        }
        .into_any();
    }
    view! {
        <div class="pet-grid" data-testid="pet-list">
            {pets.into_iter().map(|pet| view! { <PetCard pet /> }).collect_view()}
        </div>
    }
    .into_any()
}
