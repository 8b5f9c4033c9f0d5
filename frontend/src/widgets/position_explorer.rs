//! Plots the position encodings a GPT config can pick, computed on the page by the engine's
//! own `model::position`: the sinusoidal table, and for each encoding the similarity between
//! positions `m` and `n` (the dot product of their encodings, RoPE's rotated dot product, or
//! ALiBi's score bias), so that one can see which depend only on the distance `m − n`.

use super::config::PositionExplorerConfig;
use engine::model::position;
use leptos::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Encoding {
    Sinusoidal,
    Rope,
    Alibi,
}

/// A matrix drawn as an SVG grid, values mapped linearly from [min, max] to 0–100 % heat.
fn heat(rows: &[Vec<f64>], testid: &'static str) -> impl IntoView + use<> {
    let (lo, hi) = rows
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let span = (hi - lo).max(1e-12);
    let (h, w) = (rows.len(), rows.first().map_or(0, Vec::len));
    let cells = rows
        .iter()
        .enumerate()
        .flat_map(|(i, row)| row.iter().enumerate().map(move |(j, &v)| (i, j, v)))
        .map(|(i, j, v)| {
            view! {
                <rect
                    class="attn-cell"
                    x=j
                    y=i
                    width=1
                    height=1
                    data-v=format!("{v:.4}")
                    style=format!("--w: {:.1}%", (v - lo) / span * 100.0)
                >
                    <title>{format!("({i}, {j}): {v:.3}")}</title>
                </rect>
            }
        })
        .collect_view();
    view! {
        <svg class="pos-heat" data-testid=testid viewBox=format!("0 0 {w} {h}") preserveAspectRatio="none">
            {cells}
        </svg>
        <p class="stat">{format!("range {lo:.3} (light) to {hi:.3} (dark)")}</p>
    }
}

#[component]
pub fn PositionExplorer(config: PositionExplorerConfig) -> impl IntoView {
    let encoding = RwSignal::new(Encoding::Sinusoidal);
    let n = config.positions.clamp(2, 128);
    let dim = (config.dim.clamp(2, 128) / 2) * 2;
    // A fixed query/key vector for RoPE: the same content at every position, so that any
    // change in the dot product comes from the positions alone.
    let content: Vec<f64> = (0..dim).map(|i| ((i * 7 + 3) as f64).sin()).collect();

    let similarity = move || -> Vec<Vec<f64>> {
        match encoding.get() {
            Encoding::Sinusoidal => {
                let pe: Vec<Vec<f64>> = (0..n).map(|p| position::sinusoidal(p, dim)).collect();
                (0..n)
                    .map(|m| {
                        (0..n)
                            .map(|k| pe[m].iter().zip(&pe[k]).map(|(a, b)| a * b).sum())
                            .collect()
                    })
                    .collect()
            }
            Encoding::Rope => {
                let rot: Vec<Vec<f64>> = (0..n).map(|p| position::rope(&content, p)).collect();
                (0..n)
                    .map(|m| {
                        (0..n)
                            .map(|k| rot[m].iter().zip(&rot[k]).map(|(a, b)| a * b).sum())
                            .collect()
                    })
                    .collect()
            }
            Encoding::Alibi => {
                // Head 1 of 4 (slope 1/4); the future is masked, drawn as 0 penalty.
                let slope = position::alibi_slopes(4)[0];
                (0..n)
                    .map(|m| {
                        (0..n)
                            .map(|k| if k <= m { -slope * (m - k) as f64 } else { 0.0 })
                            .collect()
                    })
                    .collect()
            }
        }
    };
    let table = move || -> Vec<Vec<f64>> { (0..n).map(|p| position::sinusoidal(p, dim)).collect() };
    let explain = move || {
        match encoding.get() {
        Encoding::Sinusoidal => format!(
            "PE(m) · PE(n) for m, n < {n}, d = {dim}: a band along the diagonal, the same along every parallel to it, so it depends on m − n only (the table is added to the embeddings, so the model also sees cross terms with the tokens)."
        ),
        Encoding::Rope => format!(
            "RoPE(q, m) · RoPE(q, n) for one fixed vector q, d = {dim}: again a function of m − n, here exactly, because rotating both by m and n leaves a rotation by n − m between them."
        ),
        Encoding::Alibi => "ALiBi adds −slope · (m − n) to the score of query m for key n ≤ m (head 1, slope 1/4): a penalty growing with distance and no embedding at all."
            .to_string(),
    }
    };

    view! {
        <div class="position-explorer" data-testid="position-explorer">
            <p class="widget-title">"Position encodings, computed by the engine"</p>
            <div class="controls" role="radiogroup" aria-label="encoding">
                {[
                    (Encoding::Sinusoidal, "sinusoidal"),
                    (Encoding::Rope, "rope"),
                    (Encoding::Alibi, "alibi"),
                ]
                    .into_iter()
                    .map(|(e, name)| {
                        view! {
                            <label class="choice-inline">
                                <input
                                    type="radio"
                                    name="pos-encoding"
                                    data-testid=format!("pos-{name}")
                                    checked=move || encoding.get() == e
                                    on:change=move |_| encoding.set(e)
                                />
                                {name}
                            </label>
                        }
                    })
                    .collect_view()}
            </div>
            <div class="pos-panels">
                <figure>
                    {move || heat(&similarity(), "pos-similarity")}
                    <figcaption data-testid="pos-explain">{explain}</figcaption>
                </figure>
                <figure>
                    {move || heat(&table(), "pos-table")}
                    <figcaption>
                        {format!(
                            "The sinusoidal table itself: {n} positions down, {dim} dimensions across; fast sines on the left, slow on the right."
                        )}
                    </figcaption>
                </figure>
            </div>
        </div>
    }
}
