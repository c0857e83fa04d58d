//! A request's answer as a signal: `None` while it is on its way, then what it returned.
//! Pages start their loads with [`load`] and render by matching on the signal, which reads
//! like a Leptos resource read directly.
//!
//! Why not `LocalResource` with `Transition` and `ErrorBoundary`: measured on this app
//! (2026-11-23, gzip -9), Leptos' async machinery adds 7 KB to the WASM for the resource
//! alone and 19 KB with the two boundaries, while the web app must stay under 250 KB
//! gzipped and had 2 KB to spare. A page here loads once and never refetches, so a signal set by one
//! task is all it needs.

use leptos::prelude::*;
use leptos::task::spawn_local;
use std::future::Future;

/// Starts `request` now; the signal holds its answer once it comes. A page left before the
/// answer simply never reads it (the write into the disposed signal is dropped).
pub fn load<T>(request: impl Future<Output = T> + 'static) -> ReadSignal<Option<T>>
where
    T: Send + Sync + 'static,
{
    let (answer, set_answer) = signal(None);
    spawn_local(async move {
        let value = request.await;
        set_answer.try_set(Some(value));
    });
    answer
}
