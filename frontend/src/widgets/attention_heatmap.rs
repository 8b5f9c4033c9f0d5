//! The attention weights of the shipped model over a sentence you type, per layer and head:
//! a query × key heat map (hover a cell for its weight and token pair) and the sentence
//! shaded by what the hovered query looks at. With `layout = "heads"` it shows every head of
//! a layer side by side instead (lesson C2).

use leptos::prelude::*;

use super::config::AttentionHeatmapConfig;
use crate::worker::{EngineClient, Event, Request};

/// `maps[layer][head][query][key]`.
type Maps = Vec<Vec<Vec<Vec<f32>>>>;

#[derive(Clone, Debug, PartialEq)]
enum State {
    Loading,
    Ready { tokens: Vec<String>, maps: Maps },
    Failed(String),
}

/// A token as a label: spaces and newlines made visible.
fn label(t: &str) -> String {
    t.replace(' ', "␣").replace('\n', "⏎")
}

/// Side of a cell in SVG units, and the room left for the query labels.
const CELL: f64 = 11.0;
const MARGIN: f64 = 14.0;

/// One head's map as an SVG grid; `on_hover(query, key)` when a cell is hovered.
fn grid(
    tokens: &[String],
    map: &[Vec<f32>],
    cell: f64,
    labels: bool,
    on_hover: Option<Callback<(usize, usize)>>,
) -> impl IntoView + use<> {
    let t = map.len();
    let margin = if labels { MARGIN } else { 0.0 };
    let side = margin + cell * t as f64;
    let cells = map
        .iter()
        .enumerate()
        .flat_map(|(i, row)| row.iter().enumerate().map(move |(j, &w)| (i, j, w)))
        .map(|(i, j, w)| {
            // Cells above the diagonal are masked: drawn hatched, weight exactly 0.
            let class = if j > i {
                "attn-cell masked"
            } else {
                "attn-cell"
            };
            view! {
                <rect
                    class=class
                    x=margin + cell * j as f64
                    y=margin + cell * i as f64
                    width=cell
                    height=cell
                    data-q=i
                    data-k=j
                    data-w=format!("{w:.4}")
                    style=format!("--w: {:.1}%", (w * 100.0).clamp(0.0, 100.0))
                    on:mouseover=move |_| {
                        if let Some(cb) = on_hover {
                            cb.run((i, j));
                        }
                    }
                ></rect>
            }
        })
        .collect_view();
    let axis = labels.then(|| {
        tokens
            .iter()
            .enumerate()
            .map(|(n, tok)| {
                let at = margin + cell * n as f64 + cell / 2.0;
                view! {
                    <text class="attn-label" x=at y=margin - 4.0 text-anchor="middle">{label(tok)}</text>
                    <text class="attn-label" x=margin - 4.0 y=at + 3.5 text-anchor="end">{label(tok)}</text>
                }
            })
            .collect_view()
    });
    view! {
        <svg viewBox=format!("0 0 {side} {side}") role="img" aria-label="attention weights, queries down, keys across">
            {axis}
            {cells}
        </svg>
    }
}

#[component]
pub fn AttentionHeatmap(config: AttentionHeatmapConfig) -> impl IntoView {
    let state = RwSignal::new(State::Loading);
    let text = RwSignal::new(config.text.clone());
    let layer = RwSignal::new(0usize);
    let head = RwSignal::new(0usize);
    let hover = RwSignal::new(None::<(usize, usize)>);
    let heads_layout = config.layout == "heads";
    let url = config.model.clone();

    let client = EngineClient::get();
    let url2 = url.clone();
    let subscription = client.as_ref().ok().map(|client| {
        client.subscribe(move |ev| match ev {
            Event::AttentionMaps { url, tokens, maps } if *url == url2 => {
                hover.set(None);
                state.set(State::Ready {
                    tokens: tokens.clone(),
                    maps: maps.clone(),
                });
            }
            Event::Error { what, message } if what == "attention" => {
                state.set(State::Failed(message.clone()));
            }
            _ => {}
        })
    });
    StoredValue::new_local(subscription);
    let url3 = url.clone();
    let show = move || {
        if let Ok(client) = EngineClient::get() {
            state.set(State::Loading);
            client.send(&Request::AttentionMaps {
                url: url3.clone(),
                text: text.get_untracked(),
            });
        }
    };
    show();
    if let Err(e) = &client {
        state.set(State::Failed(e.clone()));
    }

    let shape = move || match state.get() {
        State::Ready { maps, .. } => (maps.len(), maps.first().map_or(0, Vec::len)),
        _ => (0, 0),
    };
    let on_hover = Callback::new(move |qk| hover.set(Some(qk)));
    // The query whose row shades the sentence: the hovered one, else the last.
    let readout = move || match state.get() {
        State::Ready { tokens, maps } => {
            let l = layer.get().min(maps.len() - 1);
            let map = &maps[l][head.get().min(maps[l].len() - 1)];
            let (q, k) = hover.get().unwrap_or((tokens.len() - 1, tokens.len() - 1));
            let w = map[q][k];
            let line = format!(
                "query {q} '{}' → key {k} '{}': weight {w:.3}{}",
                label(&tokens[q]),
                label(&tokens[k]),
                if k > q { " (masked: the future)" } else { "" }
            );
            let shaded = tokens
                .iter()
                .enumerate()
                .map(|(j, tok)| {
                    let w = map[q][j];
                    let class = if j == q { "attn-token query" } else { "attn-token" };
                    view! {
                        <span class=class style=format!("--w: {:.1}%", w * 100.0) title=format!("{w:.3}")>
                            {label(tok)}
                        </span>
                    }
                })
                .collect_view();
            view! {
                <p class="stat" data-testid="attn-readout">{line}</p>
                <p class="attn-sentence" data-testid="attn-sentence">{shaded}</p>
            }
            .into_any()
        }
        _ => ().into_any(),
    };

    view! {
        <div class="attention-heatmap" data-testid="attention-heatmap">
            <p class="widget-title">
                {if heads_layout {
                    "Every head of a layer, side by side"
                } else {
                    "Attention weights of the trained model"
                }}
            </p>
            <form
                class="controls"
                on:submit=move |ev| {
                    ev.prevent_default();
                    show();
                }
            >
                <label class="grow">
                    "Text "
                    <input
                        type="text"
                        data-testid="attn-text"
                        maxlength="64"
                        prop:value=move || text.get()
                        on:input=move |ev| text.set(event_target_value(&ev))
                    />
                </label>
                <button type="submit" class="primary" data-testid="attn-show">
                    "Show"
                </button>
            </form>
            <div class="controls">
                <label>
                    "Layer "
                    <select
                        data-testid="attn-layer"
                        on:change=move |ev| layer.set(event_target_value(&ev).parse().unwrap_or(0))
                    >
                        {move || {
                            (0..shape().0)
                                .map(|l| {
                                    view! {
                                        <option value=l selected=move || layer.get() == l>
                                            {format!("{}", l + 1)}
                                        </option>
                                    }
                                })
                                .collect_view()
                        }}
                    </select>
                </label>
                {(!heads_layout)
                    .then(|| {
                        view! {
                            <label>
                                "Head "
                                <select
                                    data-testid="attn-head"
                                    on:change=move |ev| {
                                        head.set(event_target_value(&ev).parse().unwrap_or(0))
                                    }
                                >
                                    {move || {
                                        (0..shape().1)
                                            .map(|h| {
                                                view! {
                                                    <option value=h selected=move || head.get() == h>
                                                        {format!("{}", h + 1)}
                                                    </option>
                                                }
                                            })
                                            .collect_view()
                                    }}
                                </select>
                            </label>
                        }
                    })}
            </div>
            {move || match state.get() {
                State::Loading => {
                    view! { <p class="status">"Loading the model and running it on the text…"</p> }
                        .into_any()
                }
                State::Failed(why) => {
                    view! { <p class="problem" data-testid="attn-error">{why}</p> }.into_any()
                }
                State::Ready { tokens, maps } => {
                    let l = layer.get().min(maps.len() - 1);
                    if heads_layout {
                        view! {
                            <div class="attn-heads" data-testid="attn-heads">
                                {maps[l]
                                    .iter()
                                    .enumerate()
                                    .map(|(h, map)| {
                                        view! {
                                            <figure class="attn-head">
                                                {grid(&tokens, map, CELL, false, None)}
                                                <figcaption>{format!("head {}", h + 1)}</figcaption>
                                            </figure>
                                        }
                                    })
                                    .collect_view()}
                            </div>
                        }
                            .into_any()
                    } else {
                        let h = head.get().min(maps[l].len() - 1);
                        view! {
                            <div class="attn-grid" data-testid="attn-grid">
                                {grid(&tokens, &maps[l][h], CELL, true, Some(on_hover))}
                            </div>
                        }
                            .into_any()
                    }
                }
            }}
            {move || (!heads_layout).then(readout)}
        </div>
    }
}
