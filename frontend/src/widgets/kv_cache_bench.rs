//! The KV-cache benchmark: generates N tokens with and without the cache in this tab and plots
//! the time per token and the cache's size against the position.

use leptos::prelude::*;

use super::config::KvCacheBenchConfig;
use super::thousands;
use crate::worker::{EngineClient, Event, Request};
use engine::bench::KvPoint;

#[component]
pub fn KvCacheBench(config: KvCacheBenchConfig) -> impl IntoView {
    let n_tokens = RwSignal::new(config.n_tokens);
    let running = RwSignal::new(false);
    let problem = RwSignal::new(None::<String>);
    let result = RwSignal::new(None::<(Vec<KvPoint>, Vec<KvPoint>)>);
    let client = EngineClient::get();
    let subscription = client.as_ref().ok().map(|client| {
        client.subscribe(move |ev| match ev {
            Event::KvProfile { cached, uncached } => {
                running.set(false);
                problem.set(None);
                result.set(Some((cached.clone(), uncached.clone())));
            }
            Event::Error { what, message } if what == "kv bench" => {
                running.set(false);
                problem.set(Some(message.clone()));
            }
            _ => {}
        })
    });
    StoredValue::new_local(subscription);
    let run = move |_| {
        if let Ok(client) = EngineClient::get() {
            running.set(true);
            client.send(&Request::KvBench {
                n_tokens: n_tokens.get_untracked(),
            });
        }
    };
    let total = |ps: &[KvPoint]| ps.iter().map(|p| p.ms).sum::<f64>();
    view! {
        <div class="kv-cache-bench" data-testid="kv-cache-bench">
            <p class="widget-title">"Generation with and without the KV cache, in this tab"</p>
            <div class="controls">
                <label>
                    "tokens "
                    <select
                        data-testid="kv-tokens"
                        on:change=move |ev| {
                            n_tokens.set(event_target_value(&ev).parse().unwrap_or(256))
                        }
                    >
                        {[64usize, 128, 256, 512]
                            .into_iter()
                            .map(|n| {
                                view! {
                                    <option value=n.to_string() selected=move || n_tokens.get() == n>
                                        {n.to_string()}
                                    </option>
                                }
                            })
                            .collect_view()}
                    </select>
                </label>
                <button
                    class="primary"
                    data-testid="kv-run"
                    disabled=move || running.get()
                    on:click=run
                >
                    {move || if running.get() { "Running…" } else { "Run the benchmark" }}
                </button>
            </div>
            {move || problem.get().map(|p| view! { <p class="problem">{p}</p> })}
            {move || {
                result
                    .get()
                    .map(|(cached, uncached)| {
                        let (tc, tu) = (total(&cached), total(&uncached));
                        let bytes = cached.last().map_or(0, |p| p.cache_bytes);
                        let summary = format!(
                            "{} tokens: {:.0} ms with the cache, {:.0} ms without ({:.1}× faster); the cache ends at {} bytes = 2 layers × 2 × 4 heads × 16 × {} tokens × 4 bytes.",
                            cached.len(),
                            tc,
                            tu,
                            tu / tc.max(1e-9),
                            thousands(bytes),
                            bytes / (2 * 2 * 64 * 4),
                        );
                        let time = vec![
                            ("with the cache", "train-eval", points(&cached, |p| p.ms)),
                            ("without", "val", points(&uncached, |p| p.ms)),
                        ];
                        let memory = vec![
                            (
                                "cache (KiB)",
                                "train-eval",
                                points(&cached, |p| p.cache_bytes as f64 / 1024.0),
                            ),
                        ];
                        view! {
                            <p class="stat" data-testid="kv-summary">{summary}</p>
                            <PositionChart series=time y_label="ms per token" testid="kv-time-chart" />
                            <PositionChart
                                series=memory
                                y_label="KV cache size (KiB)"
                                testid="kv-memory-chart"
                            />
                        }
                    })
            }}
        </div>
    }
}

/// A chart line: legend name, CSS class, `(position, value)` points.
type Line = (&'static str, &'static str, Vec<(f64, f64)>);

fn points(ps: &[KvPoint], f: impl Fn(&KvPoint) -> f64) -> Vec<(f64, f64)> {
    ps.iter().map(|p| (p.position as f64, f(p))).collect()
}

/// A line chart of a value against the position, with the chart classes of `charts`.
#[component]
fn PositionChart(series: Vec<Line>, y_label: &'static str, testid: &'static str) -> impl IntoView {
    const W: f64 = 640.0;
    const H: f64 = 200.0;
    const LEFT: f64 = 48.0;
    const TOP: f64 = 10.0;
    const BOTTOM: f64 = 26.0;
    let all = series.iter().flat_map(|s| s.2.iter());
    let x_max = all.clone().map(|p| p.0).fold(1.0, f64::max);
    // The 98th percentile bounds the y axis, so one slow outlier (a GC pause) does not flatten it.
    let mut ys: Vec<f64> = all.map(|p| p.1).filter(|y| y.is_finite()).collect();
    ys.sort_by(f64::total_cmp);
    let y_max = ys
        .get((ys.len() * 98 / 100).min(ys.len().saturating_sub(1)))
        .copied()
        .unwrap_or(1.0)
        .max(1e-6)
        * 1.1;
    let sx = move |x: f64| LEFT + x / x_max * (W - LEFT - 8.0);
    let sy = move |y: f64| TOP + (1.0 - (y / y_max).min(1.0)) * (H - TOP - BOTTOM);
    let lines = series
        .iter()
        .map(|(_, class, pts)| {
            let d = pts
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                .collect::<Vec<_>>()
                .join(" ");
            view! { <polyline class=format!("series {class}") points=d></polyline> }
        })
        .collect_view();
    let ticks = (0..=2)
        .map(|i| {
            let y = y_max * f64::from(i) / 2.0;
            view! {
                <line class="grid" x1=LEFT x2=W - 8.0 y1=sy(y) y2=sy(y)></line>
                <text class="tick" x=LEFT - 4.0 y=sy(y) + 4.0 text-anchor="end">{format!("{y:.2}")}</text>
            }
        })
        .collect_view();
    let legend = series
        .iter()
        .map(|(name, class, _)| view! { <span class=format!("legend-item {class}")>{*name}</span> })
        .collect_view();
    view! {
        <figure class="chart">
            <svg viewBox=format!("0 0 {W} {H}") role="img" aria-label=y_label data-testid=testid>
                {ticks}
                <line class="axis" x1=LEFT x2=LEFT y1=TOP y2=H - BOTTOM></line>
                <line class="axis" x1=LEFT x2=W - 8.0 y1=H - BOTTOM y2=H - BOTTOM></line>
                <text class="tick" x=W - 8.0 y=H - 6.0 text-anchor="end">{format!("position {x_max:.0}")}</text>
                {lines}
            </svg>
            <figcaption>{legend} <span class="axis-label">{format!("{y_label} against position")}</span></figcaption>
        </figure>
    }
}
