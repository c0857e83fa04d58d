//! Hunger as hearts: `ceil((500 − hunger) / 100)` filled out of five (the shared rule).

use leptos::prelude::*;
use livepet_shared::rules::{hearts, max_hearts};
use livepet_shared::Rules;

/// Five hearts, as many filled as the pet is fed. `data-hearts` holds the count.
#[component]
pub fn Hearts(
    /// The pet's hunger, 0 (full) to 500 (starving).
    #[prop(into)]
    hunger: Signal<u32>,
) -> impl IntoView {
    let rules = Rules::default();
    let max = max_hearts(&rules);
    let count = Memo::new(move |_| hearts(hunger.get(), &rules));
    view! {
        <span
            class="hearts"
            data-testid="hearts"
            data-hearts=move || count.get().to_string()
            role="img"
            aria-label=move || format!("{} of {max} hearts", count.get())
        >
            {(0..max)
                .map(|i| {
                    view! {
                        <span
                            class=move || if i < count.get() { "heart full" } else { "heart empty" }
                            aria-hidden="true"
                        >
                            "♥"
                        </span>
                    }
                })
                .collect_view()}
        </span>
    }
}
