//! "Active pets": other people's pets that are on someone's screen right now, how many,
//! sorted by name, each with a "Give treat (N left)" button.

use crate::components::PetArt;
use leptos::prelude::*;
use livepet_shared::wire::ActivePet;
use livepet_shared::PetId;
use std::cmp::Ordering;

/// Name order for people: the browser's collation (`localeCompare`), so "bo" sits beside
/// "Bo" and "Émile" beside "Emma". JavaScript's, not Rust's: Unicode case tables compiled
/// into the WASM would cost several KB. Equal names keep a stable order by id.
pub fn by_name(a: &ActivePet, b: &ActivePet) -> Ordering {
    let order = js_sys::JsString::from(a.name.as_str()).locale_compare(
        &b.name,
        &js_sys::Array::new(),
        &js_sys::Object::new(),
    );
    order.cmp(&0).then(a.id.cmp(&b.id))
}

/// Sorts the list [`by_name`]. An insertion sort on purpose: the list is one page (at most
/// 100 pets) and arrives mostly sorted, and the standard library's sorts add about 3 KB to
/// the WASM.
pub fn sort_by_name(list: &mut [ActivePet]) {
    for i in 1..list.len() {
        let mut j = i;
        while j > 0 && by_name(&list[j - 1], &list[j]) == Ordering::Greater {
            list.swap(j - 1, j);
            j -= 1;
        }
    }
}

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
    let sorted = Memo::new(move |_| {
        let mut list = pets.get();
        sort_by_name(&mut list);
        list
    });
    let count = move || pets.with(Vec::len);
    view! {
        <section class="active-pets" data-testid="active-pets" aria-labelledby="active-pets-title">
            <h2 id="active-pets-title">
                "Active pets " <span class="count" data-testid="active-count">{count}</span>
                <span class="treats-left" data-testid="treats">
                    {move || match treats.get() {
                        1 => "1 treat left".to_string(),
                        n => format!("{n} treats left"),
                    }}
                </span>
            </h2>
            <Show
                when=move || count() != 0
                fallback=|| {
                    view! {
                        <p class="empty-note" data-testid="nobody-around">
                            "No one is looking at a pet right now"
                        </p>
                    }
                }
            >
                <ul class="active-list">
                    <For
                        each=move || sorted.get()
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
