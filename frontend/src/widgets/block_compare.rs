//! Lesson C3's widget: two variants of the transformer block (norm, FFN, norm placement,
//! residuals) trained side by side in the engine worker on the same data from the same seed,
//! with both loss curves on one chart and the gradient norm reaching each layer.

use leptos::prelude::*;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::config::BlockCompareConfig;
use super::thousands;
use crate::charts::{LossChart, Series};
use crate::worker::protocol::{BlockVariant, CompareSpec};
use crate::worker::{EngineClient, Event, Request};
use engine::model::gpt::{Ffn, Norm, NormPlacement};

/// Steps whose per-layer gradient norms are averaged for the bar chart (single steps are noisy).
const GRAD_WINDOW: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Idle,
    Running,
    Done,
}

/// What one side has reported in the current run.
#[derive(Clone, Copy)]
struct Side {
    variant: RwSignal<BlockVariant>,
    steps: RwSignal<Vec<(f64, f64)>>,
    evals: RwSignal<Vec<(f64, f64)>>,
    /// Per-layer gradient norms of the last `GRAD_WINDOW` steps.
    grads: RwSignal<Vec<Vec<f32>>>,
    n_params: RwSignal<usize>,
    failed: RwSignal<Option<String>>,
}

impl Side {
    fn new(variant: BlockVariant) -> Self {
        Self {
            variant: RwSignal::new(variant),
            steps: RwSignal::new(Vec::new()),
            evals: RwSignal::new(Vec::new()),
            grads: RwSignal::new(Vec::new()),
            n_params: RwSignal::new(0),
            failed: RwSignal::new(None),
        }
    }

    fn clear(&self) {
        self.steps.set(Vec::new());
        self.evals.set(Vec::new());
        self.grads.set(Vec::new());
        self.n_params.set(0);
        self.failed.set(None);
    }

    /// Mean gradient norm of each layer over the window.
    fn mean_grads(&self) -> Vec<f64> {
        self.grads.with(|g| {
            let Some(n) = g.first().map(Vec::len) else {
                return Vec::new();
            };
            (0..n)
                .map(|l| g.iter().map(|s| f64::from(s[l])).sum::<f64>() / g.len() as f64)
                .collect()
        })
    }
}

/// "LayerNorm · GELU · pre-norm · residuals", for the legend.
fn describe(v: &BlockVariant) -> String {
    format!(
        "{} · {} · {}-norm · {}",
        match v.norm {
            Norm::LayerNorm => "LayerNorm",
            Norm::RmsNorm => "RMSNorm",
        },
        match v.ffn {
            Ffn::Gelu => "GELU",
            Ffn::Relu => "ReLU",
            Ffn::Swiglu => "SwiGLU",
        },
        match v.norm_placement {
            NormPlacement::Pre => "pre",
            NormPlacement::Post => "post",
        },
        if v.residual {
            "residuals"
        } else {
            "no residuals"
        }
    )
}

#[component]
pub fn BlockCompare(config: BlockCompareConfig) -> impl IntoView {
    let phase = RwSignal::new(Phase::Idle);
    let run_id = RwSignal::new(0u32);
    let status = RwSignal::new(String::new());
    let sides = [Side::new(config.a), Side::new(config.b)];
    let max_steps = config.train.max_steps;

    let client = EngineClient::get();
    let subscription = client.as_ref().ok().map(|client| {
        client.subscribe(move |ev| {
            let current = run_id.get_untracked();
            match ev {
                Event::Progress { what, done, total }
                    if phase.get_untracked() == Phase::Running =>
                {
                    status.set(format!("{what}: {done}/{total}"));
                }
                Event::VariantStarted {
                    run,
                    variant,
                    n_params,
                } if *run == current => {
                    status.set(String::new());
                    sides[*variant % 2].n_params.set(*n_params);
                }
                Event::VariantStep {
                    run,
                    variant,
                    step,
                    loss,
                    layer_grad_norms,
                    ..
                } if *run == current => {
                    let side = sides[*variant % 2];
                    side.steps
                        .update(|s| s.push((*step as f64, f64::from(*loss))));
                    side.grads.update(|g| {
                        g.push(layer_grad_norms.clone());
                        if g.len() > GRAD_WINDOW {
                            g.remove(0);
                        }
                    });
                }
                Event::VariantEval {
                    run,
                    variant,
                    step,
                    val,
                } if *run == current => {
                    sides[*variant % 2]
                        .evals
                        .update(|e| e.push((*step as f64, f64::from(*val))));
                }
                Event::VariantFailed {
                    run,
                    variant,
                    message,
                } if *run == current => sides[*variant % 2].failed.set(Some(message.clone())),
                Event::VariantsDone { run } if *run == current => phase.set(Phase::Done),
                Event::Error { what, message } if what == "compare" => {
                    phase.set(Phase::Idle);
                    status.set(format!("training failed: {message}"));
                }
                _ => {}
            }
        })
    });
    StoredValue::new_local(subscription);
    on_cleanup(move || {
        if let Ok(c) = EngineClient::get() {
            c.send(&Request::Stop);
        }
    });

    let spec = move || CompareSpec {
        corpus_url: config.corpus.clone(),
        n_layer: config.model.n_layer,
        n_head: config.model.n_head,
        n_embd: config.model.n_embd,
        block_size: config.model.block_size,
        batch_size: config.train.batch_size,
        learning_rate: config.train.learning_rate,
        max_steps: config.train.max_steps,
        eval_interval: config.train.eval_interval,
        variants: [
            sides[0].variant.get_untracked(),
            sides[1].variant.get_untracked(),
        ],
    };
    let start = move |_| {
        let Ok(client) = EngineClient::get() else {
            status.set("the engine worker could not start in this browser".into());
            return;
        };
        run_id.update(|r| *r += 1);
        sides.iter().for_each(Side::clear);
        phase.set(Phase::Running);
        status.set("Loading the corpus and building both models…".into());
        client.send(&Request::CompareVariants {
            run: run_id.get_untracked(),
            spec: spec(),
        });
    };
    let stop = move |_| {
        if let Ok(client) = EngineClient::get() {
            client.send(&Request::Stop);
        }
        phase.set(Phase::Done);
    };

    let series = Signal::derive(move || {
        let [a, b] = sides;
        vec![
            Series {
                name: "A (each step)",
                class: "variant-a-step",
                points: a.steps.get(),
            },
            Series {
                name: "B (each step)",
                class: "variant-b-step",
                points: b.steps.get(),
            },
            Series {
                name: "A (validation)",
                class: "variant-a",
                points: a.evals.get(),
            },
            Series {
                name: "B (validation)",
                class: "variant-b",
                points: b.evals.get(),
            },
        ]
    });
    let done_steps = move || sides.iter().map(|s| s.steps.with(Vec::len)).sum::<usize>();
    let running = move || phase.get() == Phase::Running;

    view! {
        <div class="block-compare" data-testid="block-compare">
            <p class="widget-title">
                {format!(
                    "Two GPTs of {} layers, {} heads, {}-dim, context {} characters, {} steps of {} sequences each, same data and seed.",
                    config.model.n_layer,
                    config.model.n_head,
                    config.model.n_embd,
                    config.model.block_size,
                    config.train.max_steps,
                    config.train.batch_size,
                )}
            </p>
            <div class="variant-pickers">
                <VariantPicker label="A" side=sides[0] disabled=Signal::derive(running) />
                <VariantPicker label="B" side=sides[1] disabled=Signal::derive(running) />
            </div>
            <div class="controls">
                <button class="primary" data-testid="compare-start" on:click=start disabled=running>
                    {move || if phase.get() == Phase::Idle { "Train both" } else { "Train again" }}
                </button>
                <button data-testid="compare-stop" on:click=stop disabled=move || !running()>
                    "Stop"
                </button>
                <span class="stat" data-testid="compare-phase">
                    {move || match phase.get() {
                        Phase::Idle => "not started",
                        Phase::Running => "training",
                        Phase::Done => "finished",
                    }}
                </span>
                <span class="stat">
                    "steps "
                    <strong data-testid="compare-steps">{done_steps}</strong>
                    {format!(" / {}", 2 * max_steps)}
                </span>
            </div>
            <progress
                max=2 * max_steps
                value=move || done_steps() as f64
                aria-label="training progress of both variants"
            ></progress>
            <p class="status">{move || status.get()}</p>
            <div class="stats">
                <SideStats label="A" side=sides[0] />
                <SideStats label="B" side=sides[1] />
            </div>
            <LossChart series=series x_max=Signal::derive(move || max_steps as f64) />
            <GradChart sides=sides n_layer=config.model.n_layer />
        </div>
    }
}

/// A select whose options are serde values of `T` (e.g. "layernorm"), with labels.
#[component]
fn EnumSelect<T>(
    testid: String,
    value: Signal<T>,
    options: &'static [(&'static str, &'static str)],
    on_pick: Callback<T>,
    disabled: Signal<bool>,
) -> impl IntoView
where
    T: DeserializeOwned + serde::Serialize + PartialEq + Clone + Send + Sync + 'static,
{
    // Option values are the serde form: a string for the enums, "true"/"false" for a bool.
    let current = move || match serde_json::to_value(value.get()) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(v) => v.to_string(),
        Err(_) => String::new(),
    };
    view! {
        <select
            data-testid=testid
            disabled=disabled
            on:change=move |ev| {
                let raw = event_target_value(&ev);
                let picked = serde_json::from_value::<T>(serde_json::Value::String(raw.clone()))
                    .or_else(|_| serde_json::from_str::<T>(&raw));
                if let Ok(t) = picked {
                    on_pick.run(t);
                }
            }
        >
            {options
                .iter()
                .map(|&(v, label)| {
                    view! {
                        <option
                            value=v
                            selected=move || current() == v
                        >
                            {label}
                        </option>
                    }
                })
                .collect_view()}
        </select>
    }
}

/// The four choices of one variant.
#[component]
fn VariantPicker(label: &'static str, side: Side, disabled: Signal<bool>) -> impl IntoView {
    let v = side.variant;
    let id = label.to_lowercase();
    view! {
        <fieldset class=format!("variant-picker variant-{id}")>
            <legend>{format!("Variant {label}")}</legend>
            <label>
                "norm "
                <EnumSelect
                    testid=format!("{id}-norm")
                    value=Signal::derive(move || v.get().norm)
                    options=&[("layernorm", "LayerNorm"), ("rmsnorm", "RMSNorm")]
                    on_pick=Callback::new(move |n| v.update(|v| v.norm = n))
                    disabled=disabled
                />
            </label>
            <label>
                "FFN "
                <EnumSelect
                    testid=format!("{id}-ffn")
                    value=Signal::derive(move || v.get().ffn)
                    options=&[("gelu", "GELU"), ("relu", "ReLU"), ("swiglu", "SwiGLU")]
                    on_pick=Callback::new(move |f| v.update(|v| v.ffn = f))
                    disabled=disabled
                />
            </label>
            <label>
                "norm "
                <EnumSelect
                    testid=format!("{id}-placement")
                    value=Signal::derive(move || v.get().norm_placement)
                    options=&[("pre", "pre-norm"), ("post", "post-norm")]
                    on_pick=Callback::new(move |p| v.update(|v| v.norm_placement = p))
                    disabled=disabled
                />
            </label>
            <label>
                "residuals "
                <EnumSelect
                    testid=format!("{id}-residual")
                    value=Signal::derive(move || v.get().residual)
                    options=&[("true", "on"), ("false", "off")]
                    on_pick=Callback::new(move |r| v.update(|v| v.residual = r))
                    disabled=disabled
                />
            </label>
        </fieldset>
    }
}

/// Parameters, last loss and last validation loss of one side.
#[component]
fn SideStats(label: &'static str, side: Side) -> impl IntoView {
    let id = label.to_lowercase();
    let last_loss = move || {
        side.steps
            .with(|s| s.last().map_or("–".into(), |l| format!("{:.3}", l.1)))
    };
    let last_val = move || {
        side.evals
            .with(|e| e.last().map_or("–".into(), |e| format!("{:.3}", e.1)))
    };
    let failed_id = format!("{id}-failed");
    // The curves as data, for tests and for anyone who wants the numbers.
    let losses = move || {
        side.steps
            .with(|s| serde_json::to_string(&s.iter().map(|p| p.1).collect::<Vec<_>>()))
            .unwrap_or_default()
    };
    let vals = move || {
        side.evals
            .with(|e| serde_json::to_string(&e.iter().map(|p| p.1).collect::<Vec<_>>()))
            .unwrap_or_default()
    };
    view! {
        <span
            class=format!("side-stats variant-{id}")
            data-testid=format!("{id}-stats")
            data-losses=losses
            data-vals=vals
        >
            <span class=format!("legend-item variant-{id}")>{label}</span>
            " "
            {move || describe(&side.variant.get())}
            " · "
            {move || match side.n_params.get() {
                0 => "–".to_string(),
                n => thousands(n),
            }}
            " parameters · loss "
            <strong data-testid=format!("{id}-loss")>{last_loss}</strong>
            " · val "
            <strong data-testid=format!("{id}-val")>{last_val}</strong>
            {move || {
                side.failed
                    .get()
                    .map(|m| {
                        view! {
                            <span class="problem" data-testid=failed_id.clone()>
                                {format!(" stopped: {m}")}
                            </span>
                        }
                    })
            }}
        </span>
    }
}

const W: f64 = 640.0;
const H: f64 = 220.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 30.0;

/// Bars of the mean gradient norm of each layer's parameters over the last steps, A and B side
/// by side, on a log scale (without residuals they span many orders of magnitude).
#[component]
fn GradChart(sides: [Side; 2], n_layer: usize) -> impl IntoView {
    let means = Memo::new(move |_| [sides[0].mean_grads(), sides[1].mean_grads()]);
    // Decades shown: from below the smallest positive mean to above the largest.
    let decades = Memo::new(move |_| {
        let all: Vec<f64> = means.with(|m| {
            m.iter()
                .flatten()
                .copied()
                .filter(|v| v.is_finite() && *v > 0.0)
                .collect()
        });
        let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if lo.is_finite() {
            (
                lo.log10().floor(),
                hi.log10().ceil().max(lo.log10().floor() + 1.0),
            )
        } else {
            (-3.0, 1.0)
        }
    });
    let sy = move |v: f64| {
        let (lo, hi) = decades.get();
        let t = ((v.max(1e-30).log10() - lo) / (hi - lo)).clamp(0.0, 1.0);
        TOP + (1.0 - t) * (H - TOP - BOTTOM)
    };
    let slot = (W - LEFT - RIGHT) / n_layer.max(1) as f64;
    let bar_w = slot * 0.3;
    let ticks = move || {
        let (lo, hi) = decades.get();
        let (lo, hi) = (lo as i32, hi as i32);
        (lo..=hi)
            .map(|e| {
                let y = sy(10f64.powi(e));
                view! {
                    <line class="grid" x1=LEFT x2=W - RIGHT y1=y y2=y></line>
                    <text class="tick" x=LEFT - 6.0 y=y + 4.0 text-anchor="end">{format!("1e{e}")}</text>
                }
            })
            .collect_view()
    };
    let bars = move || {
        let m = means.get();
        let base = H - BOTTOM;
        m.iter()
            .enumerate()
            .flat_map(|(s, values)| {
                let name = ["a", "b"][s];
                values
                    .iter()
                    .enumerate()
                    .map(move |(l, &v)| {
                        let x = LEFT + slot * l as f64 + slot * 0.2 + bar_w * s as f64;
                        let y = sy(v);
                        view! {
                            <rect
                                class=format!("bar variant-{name}")
                                data-testid="grad-bar"
                                data-variant=name
                                data-layer=l
                                data-norm=v
                                x=x
                                y=y
                                width=bar_w
                                height=(base - y).max(0.0)
                            >
                                <title>{format!("{} layer {}: {v:.2e}", name.to_uppercase(), l + 1)}</title>
                            </rect>
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .collect_view()
    };
    let labels = (0..n_layer)
        .map(|l| {
            view! {
                <text class="tick" x=LEFT + slot * (l as f64 + 0.5) y=H - 10.0 text-anchor="middle">
                    {format!("layer {}", l + 1)}
                </text>
            }
        })
        .collect_view();
    view! {
        <figure class="chart grad-chart">
            <svg
                viewBox=format!("0 0 {W} {H}")
                role="img"
                aria-label="gradient norm of each layer"
                data-testid="grad-chart"
            >
                {ticks}
                {labels}
                <line class="axis" x1=LEFT x2=LEFT y1=TOP y2=H - BOTTOM></line>
                <line class="axis" x1=LEFT x2=W - RIGHT y1=H - BOTTOM y2=H - BOTTOM></line>
                {bars}
            </svg>
            <figcaption>
                <span class="legend-item variant-a">"A"</span>
                <span class="legend-item variant-b">"B"</span>
                <span class="axis-label">
                    {format!(
                        "gradient norm of each layer's parameters before clipping, mean of the last {GRAD_WINDOW} steps (log scale)",
                    )}
                </span>
            </figcaption>
        </figure>
    }
}
