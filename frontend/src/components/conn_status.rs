//! The small connected / reconnecting light in the header.

use crate::ws::ConnStatus;
use leptos::prelude::*;

#[component]
pub fn ConnIndicator(#[prop(into)] status: Signal<ConnStatus>) -> impl IntoView {
    view! {
        <span
            class=move || format!("conn conn-{}", status.get().as_str())
            role="status"
            title="Live connection to the server"
        >
            <span class="conn-dot" aria-hidden="true"></span>
            <span data-testid="conn-status">{move || status.get().as_str()}</span>
        </span>
    }
}
