//! "Active pets": other people's pets that are on someone's screen right now, one page of
//! them at a time in the server's name order, how many there are in all, previous/next, and
//! a "Give treat (N left)" button on each.

use crate::components::PetArt;
use crate::fmt;
use crate::ws::{next_page, prev_page, ActivePage, ACTIVE_PAGE};
use leptos::prelude::*;
use livepet_shared::wire::ActivePet;
use livepet_shared::{PetId, UserId};

/// The active pets a user may treat: everyone else's (the server refuses treats for one's
/// own). No user (the session just ended) leaves nothing to treat.
pub fn others(active: &[ActivePet], me: Option<UserId>) -> Vec<ActivePet> {
    let Some(me) = me else {
        return Vec::new();
    };
    active
        .iter()
        .filter(|p| p.owner_id != me)
        .cloned()
        .collect()
}

/// What the server sorts the active list by, before the id: the name in lower case. Rows
/// must come in the server's order, or a page would disagree with its neighbours about
/// where it starts and ends. JavaScript's `toLowerCase`, not Rust's: both apply Unicode's
/// default case mapping, and Rust's case tables compiled into the WASM would cost several KB.
fn sort_key(name: &str) -> String {
    js_sys::JsString::from(name).to_lower_case().into()
}

/// Sorts the list like the server does: by lower-case name (code point order), then id. An
/// insertion sort on purpose: the list is one page (at most 100 pets) and arrives mostly
/// sorted, and the standard library's sorts add about 3 KB to the WASM.
pub fn sort_by_name(list: &mut [ActivePet]) {
    let mut keys: Vec<String> = list.iter().map(|p| sort_key(&p.name)).collect();
    for i in 1..list.len() {
        let mut j = i;
        while j > 0 && (&keys[j - 1], list[j - 1].id) > (&keys[j], list[j].id) {
            keys.swap(j - 1, j);
            list.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// Where a page of `len` pets starting at `offset` sits in a list of `total`: `51–100 of
/// 1,234`.
pub fn position(offset: u32, len: usize, total: u64) -> String {
    if len == 0 {
        return format!("0 of {}", fmt::count(total));
    }
    let first = u64::from(offset) + 1;
    let last = u64::from(offset) + len as u64;
    format!(
        "{}–{} of {}",
        fmt::count(first),
        fmt::count(last),
        fmt::count(total)
    )
}

/// `1 pet active`, `1,234 pets active`.
pub fn active_count(total: u64) -> String {
    match total {
        1 => "1 pet active".into(),
        n => format!("{} pets active", fmt::count(n)),
    }
}

/// A pager button: asks for page `to(page)`, disabled when there is none. A function of its
/// own, `to` a plain function, so both buttons share one copy of the rendering code.
fn page_button(
    label: &'static str,
    testid: &'static str,
    to: fn(&ActivePage) -> Option<u32>,
    page: Signal<ActivePage>,
    enabled: Signal<bool>,
    on_page: Callback<u32>,
) -> impl IntoView {
    view! {
        <button
            class="button small"
            data-testid=testid
            disabled=move || page.with(to).is_none() || !enabled.get()
            on:click=move |_| {
                if let Some(offset) = page.with_untracked(to) {
                    on_page.run(offset);
                }
            }
        >
            {label}
        </button>
    }
}

#[component]
pub fn ActivePetsList(
    /// The page as the server shows it, the user's own pets included (they are counted in
    /// its total, but not listed).
    #[prop(into)]
    page: Signal<ActivePage>,
    /// The user, whose pets are no treat targets.
    #[prop(into)]
    me: Signal<Option<UserId>>,
    /// The user's treats; the buttons are disabled at 0.
    #[prop(into)]
    treats: Signal<u32>,
    /// False while the connection is down: clicks could not be delivered.
    #[prop(into)]
    enabled: Signal<bool>,
    /// Called with the pet's id when a treat is given.
    on_treat: Callback<PetId>,
    /// Called with the offset of the page to show instead (previous or next).
    on_page: Callback<u32>,
) -> impl IntoView {
    let listed = Memo::new(move |_| {
        let mut list = page.with(|p| others(&p.pets, me.get()));
        sort_by_name(&mut list);
        list
    });
    // A plain closure, not a memo: it reads one page, and a memo of a new type costs WASM.
    let mine = move || {
        let me = me.get();
        page.with(|p| p.pets.iter().filter(|p| Some(p.owner_id) == me).count())
    };
    view! {
        <section class="active-pets" data-testid="active-pets" aria-labelledby="active-pets-title">
            <h2 id="active-pets-title">
                "Active pets "
                <span class="count" data-testid="active-count">
                    {move || page.with(|p| active_count(p.total))}
                </span>
                <span class="treats-left" data-testid="treats">
                    {move || match treats.get() {
                        1 => "1 treat left".to_string(),
                        n => format!("{n} treats left"),
                    }}
                </span>
            </h2>
            <Show
                when=move || listed.with(|l| !l.is_empty())
                fallback=|| {
                    view! {
                        <p class="empty-note" data-testid="nobody-around">
                            "No one else's pet is on this page right now"
                        </p>
                    }
                }
            >
                <ul class="active-list">
                    <For
                        each=move || listed.get()
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
            // Hidden rather than left out (here and the pager): a `Show` costs more WASM.
            <p class="own-note" data-testid="own-not-listed" hidden=move || mine() == 0>
                "Your own pets are counted, but not listed here."
            </p>
            // One page holds everyone (the usual case): no pager.
            <nav
                class="pager"
                aria-label="Pages of active pets"
                data-testid="active-pager"
                hidden=move || page.with(|p| p.offset == 0 && p.total <= u64::from(ACTIVE_PAGE))
            >
                {page_button(
                    "← Previous",
                    "page-prev",
                    |p| prev_page(p.offset),
                    page,
                    enabled,
                    on_page,
                )}
                <span class="page-position" data-testid="page-position" aria-live="polite">
                    {move || page.with(|p| position(p.offset, p.pets.len(), p.total))}
                </span>
                {page_button(
                    "Next →",
                    "page-next",
                    |p| next_page(p.offset, p.total),
                    page,
                    enabled,
                    on_page,
                )}
            </nav>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use livepet_shared::Species;

    #[test]
    fn own_pets_are_not_treat_targets() {
        let a = |id, owner| ActivePet {
            id: PetId(id),
            name: "x".into(),
            species: Species::Cat,
            owner_id: UserId(owner),
        };
        let active = [a(1, 10), a(2, 20), a(3, 20), a(4, 30)];
        assert_eq!(others(&active, Some(UserId(20))), vec![a(1, 10), a(4, 30)]);
        assert_eq!(others(&active, None), vec![]);
    }

    #[test]
    fn positions_and_counts_read_like_numbers() {
        assert_eq!(position(0, 50, 1_234), "1–50 of 1,234");
        assert_eq!(position(50, 50, 1_234), "51–100 of 1,234");
        assert_eq!(position(1_200, 34, 1_234), "1,201–1,234 of 1,234");
        assert_eq!(position(0, 1, 1), "1–1 of 1");
        assert_eq!(position(100, 0, 90), "0 of 90");
        assert_eq!(active_count(0), "0 pets active");
        assert_eq!(active_count(1), "1 pet active");
        assert_eq!(active_count(1_000_000), "1,000,000 pets active");
    }
}
