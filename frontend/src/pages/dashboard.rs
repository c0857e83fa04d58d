//! `/dashboard`: the live picture of the whole world (aggregates only), pushed over the
//! socket about once a second and drawn with a sparkline per figure.

use crate::components::Sparkline;
use crate::fmt;
use crate::ws::WsClient;
use leptos::prelude::*;
use livepet_shared::wire::Stats;

/// One figure: its title, how to read it from a frame, and how to show the number.
struct Figure {
    key: &'static str,
    title: &'static str,
    value: fn(&Stats) -> f64,
    show: fn(&Stats) -> String,
}

const FIGURES: [Figure; 10] = [
    Figure {
        key: "pets-alive",
        title: "Pets alive",
        value: |s| s.pets_alive as f64,
        show: |s| fmt::count(s.pets_alive),
    },
    Figure {
        key: "ticks",
        title: "Ticks per second",
        value: |s| s.ticks_per_second,
        show: |s| fmt::count(s.ticks_per_second.round() as u64),
    },
    Figure {
        key: "viewers",
        title: "Viewers",
        value: |s| s.viewers as f64,
        show: |s| fmt::count(s.viewers),
    },
    Figure {
        key: "active-pets",
        title: "Active pets",
        value: |s| s.active_pets as f64,
        show: |s| fmt::count(s.active_pets),
    },
    Figure {
        key: "connections",
        title: "WebSocket connections",
        value: |s| s.connections as f64,
        show: |s| fmt::count(s.connections),
    },
    Figure {
        key: "flush-rows",
        title: "Last flush: rows",
        value: |s| s.last_flush_rows as f64,
        show: |s| fmt::count(s.last_flush_rows),
    },
    Figure {
        key: "flush-seconds",
        title: "Last flush: time",
        value: |s| s.last_flush_seconds,
        show: |s| format!("{} s", fmt::fixed(s.last_flush_seconds, 2)),
    },
    Figure {
        key: "persist-lag",
        title: "Persist lag",
        value: |s| s.persist_lag_seconds,
        show: |s| format!("{} s", fmt::fixed(s.persist_lag_seconds, 1)),
    },
    Figure {
        key: "memory",
        title: "Resident memory",
        value: |s| s.resident_memory_bytes as f64,
        show: |s| fmt::bytes(s.resident_memory_bytes),
    },
    Figure {
        key: "uptime",
        title: "Uptime",
        value: |s| s.uptime_seconds,
        show: |s| fmt::duration(s.uptime_seconds),
    },
];

#[component]
pub fn DashboardPage() -> impl IntoView {
    let ws = expect_context::<WsClient>();
    ws.subscribe_stats();
    let has_data = move || ws.stats.with(|h| !h.is_empty());
    view! {
        <section class="dashboard-page" data-testid="dashboard">
            <div class="page-head">
                <h1>"Dashboard"</h1>
                <p class="muted">"The whole world, live. Updated every second."</p>
            </div>
            <Show
                when=has_data
                fallback=|| view! { <p class="loading">"Waiting for the first numbers…"</p> }
            >
                <div class="stat-grid">
                    {FIGURES
                        .iter()
                        .map(|f| {
                            let value = f.value;
                            let show = f.show;
                            let series = Signal::derive(move || {
                                ws.stats.with(|h| h.iter().map(value).collect::<Vec<_>>())
                            });
                            let current = move || {
                                ws.stats.with(|h| h.back().map(show).unwrap_or_default())
                            };
                            view! {
                                <div class="card stat" data-testid=format!("stat-{}", f.key)>
                                    <span class="stat-title">{f.title}</span>
                                    <span class="stat-value">{current}</span>
                                    <Sparkline values=series label=f.title />
                                </div>
                            }
                        })
                        .collect_view()}
                </div>
            </Show>
        </section>
    }
}
