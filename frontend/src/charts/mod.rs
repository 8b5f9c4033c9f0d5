//! Charts drawn as inline SVG (no chart library): they follow the theme through CSS.

use leptos::prelude::*;

/// A named series of `(x, y)` points.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: &'static str,
    pub class: &'static str,
    pub points: Vec<(f64, f64)>,
}

/// A training run's curves: the loss of every step, and the train and validation losses of
/// each evaluation `(step, train, val)`.
pub fn training_series(steps: Vec<(f64, f64)>, evals: &[(f64, f64, f64)]) -> Vec<Series> {
    vec![
        Series {
            name: "train (each step)",
            class: "train-step",
            points: steps,
        },
        Series {
            name: "train (eval)",
            class: "train-eval",
            points: evals.iter().map(|e| (e.0, e.1)).collect(),
        },
        Series {
            name: "validation",
            class: "val",
            points: evals.iter().map(|e| (e.0, e.2)).collect(),
        },
    ]
}

const W: f64 = 640.0;
const H: f64 = 260.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// A line chart of loss against step. `x_max` fixes the x axis (the run's planned steps).
/// Other curves set their own `caption` (what is plotted against what) and `testid`.
#[component]
pub fn LossChart(
    series: Signal<Vec<Series>>,
    x_max: Signal<f64>,
    #[prop(default = "loss (nats) against step")] caption: &'static str,
    #[prop(default = "loss-chart")] testid: &'static str,
) -> impl IntoView {
    let bounds = Memo::new(move |_| {
        let all: Vec<f64> = series.with(|s| {
            s.iter()
                .flat_map(|s| s.points.iter().map(|p| p.1))
                .filter(|y| y.is_finite())
                .collect()
        });
        let lo = all.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = all.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        if lo.is_finite() && hi.is_finite() {
            let pad = ((hi - lo) * 0.08).max(0.05);
            ((lo - pad).max(0.0), hi + pad)
        } else {
            (0.0, 5.0)
        }
    });
    let sx = move |x: f64| LEFT + (x / x_max.get().max(1.0)) * (W - LEFT - RIGHT);
    let sy = move |y: f64| {
        let (lo, hi) = bounds.get();
        TOP + (1.0 - (y - lo) / (hi - lo).max(1e-9)) * (H - TOP - BOTTOM)
    };
    let y_ticks = move || {
        let (lo, hi) = bounds.get();
        (0..=4)
            .map(|i| {
                let y = lo + (hi - lo) * f64::from(i) / 4.0;
                let py = sy(y);
                view! {
                    <line class="grid" x1=LEFT x2=W - RIGHT y1=py y2=py></line>
                    <text class="tick" x=LEFT - 6.0 y=py + 4.0 text-anchor="end">{format!("{y:.2}")}</text>
                }
            })
            .collect_view()
    };
    let x_ticks = move || {
        let max = x_max.get().max(1.0);
        (0..=4)
            .map(|i| {
                let x = max * f64::from(i) / 4.0;
                view! {
                    <text class="tick" x=sx(x) y=H - 8.0 text-anchor="middle">{format!("{x:.0}")}</text>
                }
            })
            .collect_view()
    };
    let lines = move || {
        series
            .get()
            .into_iter()
            .map(|s| {
                let pts = s
                    .points
                    .iter()
                    .filter(|p| p.1.is_finite())
                    .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                    .collect::<Vec<_>>()
                    .join(" ");
                // Sparse series (evaluations) also get a dot per point, so one point shows.
                let dots = (s.points.len() < 60)
                    .then(|| {
                        s.points
                            .iter()
                            .filter(|p| p.1.is_finite())
                            .map(|&(x, y)| {
                                view! { <circle class=format!("dot {}", s.class) cx=sx(x) cy=sy(y) r="3"></circle> }
                            })
                            .collect_view()
                    });
                view! {
                    <polyline class=format!("series {}", s.class) points=pts></polyline>
                    {dots}
                }
            })
            .collect_view()
    };
    let legend = move || {
        series
            .get()
            .into_iter()
            .map(|s| view! { <span class=format!("legend-item {}", s.class)>{s.name}</span> })
            .collect_view()
    };
    view! {
        <figure class="chart">
            <svg
                viewBox=format!("0 0 {W} {H}")
                role="img"
                aria-label=caption
                data-testid=testid
            >
                {y_ticks}
                {x_ticks}
                <line class="axis" x1=LEFT x2=LEFT y1=TOP y2=H - BOTTOM></line>
                <line class="axis" x1=LEFT x2=W - RIGHT y1=H - BOTTOM y2=H - BOTTOM></line>
                {lines}
            </svg>
            <figcaption>{legend} <span class="axis-label">{caption}</span></figcaption>
        </figure>
    }
}
