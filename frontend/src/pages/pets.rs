//! `/pets`: the user's pets as cards, newest first, and the way to adopt another.

use crate::api;
use crate::components::PetCard;
use crate::toasts::Toasts;
use leptos::prelude::*;
use leptos::task::spawn_local;
use livepet_shared::wire::PetView;

#[component]
pub fn PetsPage() -> impl IntoView {
    let toasts = expect_context::<Toasts>();
    // None while loading; Some(Err) shows a retry note instead of a blank page.
    let pets = RwSignal::new(None::<Result<Vec<PetView>, String>>);
    spawn_local(async move {
        let result = api::pets().await.map_err(|e| {
            toasts.error(e.message());
            e.message()
        });
        pets.try_set(Some(result));
    });
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
                Some(Err(message)) => {
                    view! {
                        <p class="empty-note" role="alert">
                            {message}
                        </p>
                    }
                        .into_any()
                }
                Some(Ok(list)) if list.is_empty() => {
                    view! {
                        <div class="empty-state card" data-testid="no-pets">
                            <p class="empty-title">"No pets yet"</p>
                            <p>"Adopt your first pet: it starts living the moment you name it."</p>
                            <a class="button primary" href="/pets/new">
                                "Adopt your first pet"
                            </a>
                        </div>
                    }
                        .into_any()
                }
                Some(Ok(list)) => {
                    view! {
                        <div class="pet-grid" data-testid="pet-list">
                            {list.into_iter().map(|pet| view! { <PetCard pet /> }).collect_view()}
                        </div>
                    }
                        .into_any()
                }
            }}
        </section>
    }
}
