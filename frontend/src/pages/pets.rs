//! `/pets`: the user's pets as cards, newest first, and the way to adopt another. The server
//! sends them a page of [`PETS_PAGE`] at a time; "Show more" asks for the next page, which
//! is added below the cards already shown (nothing is drawn twice).

use crate::api;
use crate::components::PetCard;
use crate::load::load;
use crate::toasts::Toasts;
use leptos::prelude::*;
use livepet_shared::wire::{PetView, PETS_PAGE};
use livepet_shared::PetId;

#[component]
pub fn PetsPage() -> impl IntoView {
    view! {
        <section class="pets-page">
            <div class="page-head">
                <h1>"Your pets"</h1>
                <a class="button primary" href="/pets/new" data-testid="new-pet">
                    "+ New pet"
                </a>
            </div>
            {pet_page(None)}
        </section>
    }
}

/// Where the page after `page` starts (`?before=` its last id), or `None` when `page` was
/// the last: a full page may have more behind it, a shorter one has not.
pub fn next_page(page: &[PetView]) -> Option<PetId> {
    if page.len() < PETS_PAGE {
        return None;
    }
    page.last().map(|p| p.id)
}

/// One page of pets, loaded from `before` (the first page: `None`), and the way to the next.
fn pet_page(before: Option<PetId>) -> AnyView {
    let toasts = expect_context::<Toasts>();
    let pets = load(async move {
        api::pets(before)
            .await
            .inspect_err(|e| toasts.error(e.message()))
    });
    (move || match pets.get() {
        None => view! { <p class="loading">"Loading your pets…"</p> }.into_any(),
        // A failed load leaves a note in place of the list, never a blank page.
        Some(Err(e)) => view! {
            <p class="empty-note" role="alert">
                {e.message()}
            </p>
        }
        .into_any(),
        Some(Ok(list)) if list.is_empty() && before.is_none() => view! {
            <div class="empty-state card" data-testid="no-pets">
                <p class="empty-title">"No pets yet"</p>
                <p>"Adopt your first pet: it starts living the moment you name it."</p>
                <a class="button primary" href="/pets/new">
                    "Adopt your first pet"
                </a>
            </div>
        }
        .into_any(),
        Some(Ok(list)) => {
            let next = next_page(&list);
            view! {
                <div class="pet-grid" data-testid="pet-list">
                    {list.into_iter().map(|pet| view! { <PetCard pet /> }).collect_view()}
                </div>
                {next.map(show_more)}
            }
            .into_any()
        }
    })
    .into_any()
}

/// The "Show more" button, which becomes the next page when clicked.
fn show_more(next: PetId) -> impl IntoView {
    let open = RwSignal::new(false);
    move || {
        if open.get() {
            pet_page(Some(next))
        } else {
            view! {
                <p class="show-more">
                    <button class="button" data-testid="show-more" on:click=move |_| open.set(true)>
                        "Show more"
                    </button>
                </p>
            }
            .into_any()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use livepet_shared::{Species, UserId};

    fn pets(ids: std::ops::Range<i64>) -> Vec<PetView> {
        ids.rev()
            .map(|id| PetView {
                id: PetId(id),
                name: "Ada".into(),
                species: Species::Owl,
                age: 0,
                hunger: 0,
                alive: true,
                born_at: 0,
                owner_id: UserId(1),
                at: 0,
            })
            .collect()
    }

    #[test]
    fn a_full_page_leads_to_the_next_from_its_last_id() {
        let full = pets(1..PETS_PAGE as i64 + 1);
        assert_eq!(next_page(&full), Some(PetId(1)));
        let full = pets(101..PETS_PAGE as i64 + 101);
        assert_eq!(next_page(&full), Some(PetId(101)));
        assert_eq!(next_page(&pets(1..PETS_PAGE as i64)), None);
        assert_eq!(next_page(&[]), None);
    }
}
