//! Messages shown in a corner for a few seconds: failed requests and the server's `error`
//! frames land here, so a problem never turns into a blank page, and so do confirmations
//! (logged in, pet adopted, treat given, logged out), which outlive a navigation.

use leptos::prelude::*;

/// How long an error stays before it dismisses itself.
const SHOW_MS: u32 = 10_000;
/// How long a neutral message ("Welcome back!") stays: it only confirms what the page shows.
const SHOW_INFO_MS: u32 = 6_000;
/// At most this many at once; the oldest go first.
const MAX_SHOWN: usize = 4;

/// What kind of message it is, for its colour and its ARIA role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToastKind {
    Error,
    Info,
}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toast {
    pub id: u64,
    pub kind: ToastKind,
    pub text: String,
}

/// The app's message list, shared through context.
#[derive(Debug, Clone, Copy)]
pub struct Toasts {
    pub items: RwSignal<Vec<Toast>>,
    next: StoredValue<u64>,
}

impl Default for Toasts {
    fn default() -> Self {
        Self::new()
    }
}

impl Toasts {
    pub fn new() -> Self {
        Toasts {
            items: RwSignal::new(Vec::new()),
            next: StoredValue::new(1),
        }
    }

    /// Shows an error message.
    pub fn error(&self, text: impl Into<String>) {
        self.push(ToastKind::Error, text.into());
    }

    /// Shows a neutral message.
    pub fn info(&self, text: impl Into<String>) {
        self.push(ToastKind::Info, text.into());
    }

    fn push(&self, kind: ToastKind, text: String) {
        let Some(id) = self.next.try_update_value(|n| {
            *n += 1;
            *n - 1
        }) else {
            return;
        };
        self.items.try_update(|items| {
            // The same sentence twice in a row (a flapping connection) is shown once.
            if items.last().is_some_and(|t| t.text == text) {
                return;
            }
            items.push(Toast { id, kind, text });
            let excess = items.len().saturating_sub(MAX_SHOWN);
            items.drain(..excess);
        });
        let this = *self;
        let show = match kind {
            ToastKind::Error => SHOW_MS,
            ToastKind::Info => SHOW_INFO_MS,
        };
        gloo_timers::callback::Timeout::new(show, move || this.dismiss(id)).forget();
    }

    /// Removes one message.
    pub fn dismiss(&self, id: u64) {
        self.items.try_update(|items| items.retain(|t| t.id != id));
    }
}
