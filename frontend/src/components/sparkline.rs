//! A tiny inline-SVG line chart of a figure's recent values.

use crate::fmt::fixed;
use leptos::prelude::*;

const W: f64 = 120.0;
const H: f64 = 32.0;

/// `points` for an SVG polyline that fits `values` into a `w`×`h` box, left to right, with
/// the lowest value at the bottom (a flat series sits in the middle).
pub fn polyline_points(values: &[f64], w: f64, h: f64) -> String {
    if values.is_empty() {
        return String::new();
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = max - min;
    let step = if values.len() > 1 {
        w / (values.len() - 1) as f64
    } else {
        0.0
    };
    let pad = 2.0;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let y = if span > 0.0 {
                pad + (h - 2.0 * pad) * (1.0 - (v - min) / span)
            } else {
                h / 2.0
            };
            format!("{},{}", fixed(i as f64 * step, 1), fixed(y, 1))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[component]
pub fn Sparkline(
    /// Oldest first.
    #[prop(into)]
    values: Signal<Vec<f64>>,
    /// What the line shows, for screen readers.
    #[prop(into)]
    label: String,
) -> impl IntoView {
    view! {
        <svg
            class="sparkline"
            viewBox=format!("0 0 {W} {H}")
            preserveAspectRatio="none"
            role="img"
            aria-label=format!("{label}, last minute")
        >
            <polyline points=move || values.with(|v| polyline_points(v, W, H)) />
        </svg>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_values_into_the_box() {
        assert_eq!(polyline_points(&[], 120.0, 32.0), "");
        assert_eq!(polyline_points(&[5.0], 120.0, 32.0), "0.0,16.0");
        assert_eq!(
            polyline_points(&[0.0, 10.0, 5.0], 100.0, 24.0),
            "0.0,22.0 50.0,2.0 100.0,12.0"
        );
    }
}
