//! The corner where dismissible messages appear.

use crate::toasts::{ToastKind, Toasts};
use leptos::prelude::*;

#[component]
pub fn ToastList(toasts: Toasts) -> impl IntoView {
    view! {
        <div class="toasts" aria-live="polite">
            <For
                each=move || toasts.items.get()
                key=|t| t.id
                children=move |t| {
                    let id = t.id;
                    let (class, role) = match t.kind {
                        ToastKind::Error => ("toast error", "alert"),
                        ToastKind::Info => ("toast info", "status"),
                    };
                    view! {
                        <div class=class role=role data-testid="toast">
                            <span class="toast-text">{t.text}</span>
                            <button
                                class="toast-close"
                                aria-label="Dismiss message"
                                on:click=move |_| toasts.dismiss(id)
                            >
                                "×"
                            </button>
                        </div>
                    }
                }
            />
        </div>
    }
}
