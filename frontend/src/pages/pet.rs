//! `/pets/:id`: one of the user's pets, live. Its state comes from `GET /api/pets/{id}`
//! and then from every `pet` frame of the socket; below it, a page of the other users' pets
//! on screen now (told apart by their `owner_id`), how many there are, and previous/next. A
//! dead pet's page shows its final state and nothing live. Whether the pet is the user's is
//! the server's answer to that request (404 for a pet that is someone else's or missing
//! alike), never a guess from the pet list.

use crate::api;
use crate::auth::Auth;
use crate::components::{ActivePetsList, Hearts, PetArt};
use crate::fmt;
use crate::load::load;
use crate::pages::not_found::missing;
use crate::toasts::Toasts;
use crate::ws::{ConnStatus, WsClient};
use leptos::prelude::*;
use livepet_shared::wire::PetView;
use livepet_shared::PetId;

/// The newer of the fetched state and the socket's last frame for this pet.
fn newest(fetched: Option<PetView>, live: Option<PetView>) -> Option<PetView> {
    match (fetched, live) {
        (Some(f), Some(l)) => Some(if l.at >= f.at { l } else { f }),
        (f, l) => f.or(l),
    }
}

/// The page of pet `id`. Another pet is another page (the router builds a new one), so the
/// old page's cleanup unwatches the old pet.
#[component]
pub fn PetPage(id: PetId) -> impl IntoView {
    let ws = expect_context::<WsClient>();
    let toasts = expect_context::<Toasts>();
    let auth = expect_context::<Auth>();
    let me = auth.user.with_untracked(|u| u.as_ref().map(|u| u.id));
    // `Ok(None)`: the user has no such pet (404), which the page says. The owner check is
    // the server's; the one here only keeps a pet another session's answer brought from
    // being shown as this user's.
    let fetched = load(async move {
        match api::pet(id).await {
            Err(e) if e.status() == Some(404) => Ok(None),
            Ok(p) if me.is_some_and(|me| me != p.owner_id) => Ok(None),
            result => result.map(Some).inspect_err(|e| toasts.error(e.message())),
        }
    });
    // Watch once the pet is known to be alive. An effect, not the request's task: a page
    // left before the answer is disposed with its effects, so it never starts watching.
    Effect::new(move |_| {
        if fetched.with(|r| matches!(r, Some(Ok(Some(p))) if p.alive)) {
            ws.watch(id);
        }
    });
    on_cleanup(move || ws.unwatch(id));

    let pet = Memo::new(move |_| {
        let fetched = fetched.with(|r| match r {
            Some(Ok(p)) => p.clone(),
            _ => None,
        });
        let live = ws
            .last_pet
            .with(|p| p.as_ref().filter(|p| p.id == id).cloned());
        newest(fetched, live)
    });

    // The answer picks the view, once: the live parts inside follow `pet` on their own, so
    // a tick updates a few text nodes instead of rebuilding the page.
    move || {
        let found = fetched.with(|r| {
            r.as_ref()
                .map(|r| r.as_ref().map(Option::is_some).map_err(api::Error::message))
        });
        match found {
            None => view! { <p class="loading">"Loading…"</p> }.into_any(),
            Some(Ok(true)) => view! { <PetLive id pet /> }.into_any(),
            Some(Ok(false)) => missing(
                "This pet doesn't exist or isn't yours",
                "Only its owner can open a pet's page. Other people's pets show up under Active pets while their owners watch them.",
            )
            .into_any(),
            Some(Err(message)) => view! {
                <section class="pet-page">
                    <p class="empty-note" role="alert">
                        {message}
                    </p>
                    <a class="button" href="/pets">
                        "Back to your pets"
                    </a>
                </section>
            }
            .into_any(),
        }
    }
}

/// The page once the pet is known; its parts follow `pet` as frames arrive.
#[component]
fn PetLive(id: PetId, pet: Memo<Option<PetView>>) -> impl IntoView {
    let ws = expect_context::<WsClient>();
    let auth = expect_context::<Auth>();
    let field =
        move |f: fn(&PetView) -> String| pet.with(|p| p.as_ref().map(f).unwrap_or_default());
    let alive = Memo::new(move |_| pet.with(|p| p.as_ref().is_some_and(|p| p.alive)));
    let dead = Signal::derive(move || !alive.get());
    let hunger = Signal::derive(move || pet.with(|p| p.as_ref().map_or(0, |p| p.hunger)));
    let (species, name) = pet.with_untracked(|p| {
        p.as_ref()
            .map(|p| (p.species, p.name.clone()))
            .unwrap_or((livepet_shared::Species::Cat, String::new()))
    });
    let connected = Signal::derive(move || ws.status.get() == ConnStatus::Connected);
    let art_label = format!("{name} the {}", species.as_str());
    let feed_label = format!("Feed {name}");

    let me = Memo::new(move |_| auth.user.with(|u| u.as_ref().map(|u| u.id)));
    let treats = Signal::derive(move || ws.treats.get().unwrap_or(0));
    let on_treat = Callback::new(move |pet_id: PetId| ws.give_treat(pet_id));
    let on_page = Callback::new(move |offset: u32| ws.show_active_page(offset));

    view! {
        <article class="pet-page" class:dead=dead data-testid="pet-page">
            <a class="back" href="/pets">
                "← Your pets"
            </a>
            <div class="card pet-hero">
                <PetArt species label=art_label dead size="big" />
                <div class="pet-info">
                    <h1 class="pet-name" data-testid="pet-name">
                        {name.clone()}
                        <Show when=move || dead.get()>
                            <span class="skull" role="img" aria-label="dead" data-testid="pet-dead">
                                " ☠"
                            </span>
                        </Show>
                    </h1>
                    <dl class="pet-facts">
                        <div>
                            <dt>"Age"</dt>
                            <dd>
                                <span data-testid="age">{move || field(|p| p.age.to_string())}</span>
                                <span class="unit">" ticks"</span>
                            </dd>
                        </div>
                        <div>
                            <dt>"Hunger"</dt>
                            <dd class="hunger">
                                <Hearts hunger />
                                <span class="hunger-number">
                                    <span data-testid="hunger">
                                        {move || field(|p| p.hunger.to_string())}
                                    </span>
                                    " / 500"
                                </span>
                            </dd>
                        </div>
                        <div>
                            <dt>"Born"</dt>
                            <dd>{move || field(|p| fmt::date(p.born_at))}</dd>
                        </div>
                    </dl>
                    <Show
                        when=move || alive.get()
                        fallback=move || {
                            view! {
                                <p class="dead-note" data-testid="dead-note">
                                    {format!("{name} has died. This is how it was at the end.")}
                                </p>
                            }
                        }
                    >
                        <button
                            class="button primary big"
                            data-testid="feed"
                            aria-label=feed_label.clone()
                            disabled=move || !connected.get()
                            on:click=move |_| ws.feed(id)
                        >
                            "Feed"
                        </button>
                    </Show>
                </div>
            </div>
            <Show when=move || alive.get()>
                <ActivePetsList page=ws.active me treats enabled=connected on_treat on_page />
            </Show>
        </article>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use livepet_shared::{Species, UserId};

    fn view(id: i64, at: i64, hunger: u32) -> PetView {
        PetView {
            id: PetId(id),
            name: "Ada".into(),
            species: Species::Owl,
            age: 1,
            hunger,
            alive: true,
            born_at: 0,
            owner_id: UserId(1),
            at,
        }
    }

    #[test]
    fn the_newest_state_wins() {
        assert_eq!(newest(None, None), None);
        assert_eq!(newest(Some(view(1, 5, 1)), None), Some(view(1, 5, 1)));
        assert_eq!(newest(None, Some(view(1, 5, 2))), Some(view(1, 5, 2)));
        assert_eq!(
            newest(Some(view(1, 5, 1)), Some(view(1, 9, 2))),
            Some(view(1, 9, 2))
        );
        assert_eq!(
            newest(Some(view(1, 9, 1)), Some(view(1, 5, 2))),
            Some(view(1, 9, 1))
        );
    }
}
