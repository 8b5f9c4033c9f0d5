//! Lesson E3's widget: the shipped model saved as fp32, int8 (symmetric, asymmetric) and
//! group-wise int4 in the engine worker, each loaded back from its bytes and measured (file
//! size, validation perplexity, a seeded sample); its perplexity against magnitude-pruning
//! sparsity; and the fp32/fp16/int8/int4 memory of 7B and 70B models beside ours.

use leptos::prelude::*;

use super::config::QuantCompareConfig;
use super::thousands;
use crate::charts::{LossChart, Series};
use crate::worker::{EngineClient, Event, Request};
use engine::quant::{FormatReport, prune::PrunePoint, weight_bytes};

#[derive(Clone, Debug, Default, PartialEq)]
struct Results {
    n_params: usize,
    formats: Vec<FormatReport>,
    pruned: Vec<PrunePoint>,
    done: bool,
}

#[component]
pub fn QuantCompare(config: QuantCompareConfig) -> impl IntoView {
    let group_size = RwSignal::new(config.group_size);
    let running = RwSignal::new(false);
    let progress = RwSignal::new(None::<(usize, usize)>);
    let problem = RwSignal::new(None::<String>);
    let results = RwSignal::new(Results::default());
    let client = EngineClient::get();
    let subscription = client.as_ref().ok().map(|client| {
        client.subscribe(move |ev| match ev {
            Event::Progress { what, done, total } if what == "quantize" => {
                progress.set(Some((*done, *total)));
            }
            Event::QuantFormat { n_params, report } => results.update(|r| {
                r.n_params = *n_params;
                r.formats.push(report.clone());
            }),
            Event::QuantPrune { point } => results.update(|r| r.pruned.push(*point)),
            Event::QuantDone => {
                running.set(false);
                results.update(|r| r.done = true);
            }
            Event::Error { what, message } if what == "quantize" => {
                running.set(false);
                problem.set(Some(message.clone()));
            }
            _ => {}
        })
    });
    StoredValue::new_local(subscription);
    let request = StoredValue::new(config);
    let run = move |_| {
        if let Ok(client) = EngineClient::get() {
            let c = request.get_value();
            running.set(true);
            problem.set(None);
            progress.set(None);
            results.set(Results::default());
            client.send(&Request::QuantCompare {
                model: c.model,
                corpus: c.corpus,
                group_size: group_size.get_untracked(),
                sparsities: c.sparsities,
                windows: c.windows,
                prompt: c.prompt,
                sample_tokens: c.sample_tokens,
            });
        }
    };
    let status = move || {
        progress
            .get()
            .filter(|_| running.get())
            .map(|(done, total)| {
                let what = match done {
                    0 => "loading the model and the corpus".to_string(),
                    d if d <= 4 => format!("saving, loading and measuring format {d} of 4"),
                    d => format!("pruning and measuring sparsity {} of {}", d - 4, total - 5),
                };
                view! {
                    <progress max=total value=done data-testid="quant-progress"></progress>
                    <span class="stat">{format!("{what} ({done} of {total} steps)")}</span>
                }
            })
    };
    view! {
        <div class="quant-compare" data-testid="quant-compare">
            <p class="widget-title">"Quantize and prune the shipped model, in this tab"</p>
            <div class="controls">
                <label>
                    "int4 group size "
                    <select
                        data-testid="quant-group"
                        on:change=move |ev| {
                            group_size.set(event_target_value(&ev).parse().unwrap_or(32))
                        }
                    >
                        {[16usize, 32, 64]
                            .into_iter()
                            .map(|g| {
                                view! {
                                    <option value=g.to_string() selected=move || group_size.get() == g>
                                        {g.to_string()}
                                    </option>
                                }
                            })
                            .collect_view()}
                    </select>
                </label>
                <button
                    class="primary"
                    data-testid="quant-run"
                    disabled=move || running.get()
                    on:click=run
                >
                    {move || if running.get() { "Working…" } else { "Quantize and measure" }}
                </button>
                {status}
            </div>
            {move || problem.get().map(|p| view! { <p class="problem">{p}</p> })}
            {move || {
                let r = results.get();
                (!r.formats.is_empty()).then(|| view! { <Formats results=r.clone() /> })
            }}
            {move || {
                let r = results.get();
                (!r.pruned.is_empty()).then(|| view! { <Pruning results=r.clone() /> })
            }}
            {move || {
                let r = results.get();
                r.done.then(|| view! { <Memory results=r.clone() /> })
            }}
        </div>
    }
}

fn fp32(r: &Results) -> Option<&FormatReport> {
    r.formats.iter().find(|f| f.name == "fp32")
}

/// The table of formats, a one-line summary, and the samples side by side.
#[component]
fn Formats(results: Results) -> impl IntoView {
    let base = fp32(&results).cloned();
    let rows = results
        .formats
        .iter()
        .map(|f| {
            let (ratio, delta) = base.as_ref().map_or((String::new(), String::new()), |b| {
                (
                    format!("{:.2}×", b.file_bytes as f64 / f.file_bytes as f64),
                    format!("{:+.2}%", (f.perplexity / b.perplexity - 1.0) * 100.0),
                )
            });
            let bits = 8.0 * f.file_bytes as f64 / results.n_params.max(1) as f64;
            view! {
                <tr data-format=f.name.clone()>
                    <td>{f.name.clone()}</td>
                    <td class="num" data-testid="file-bytes">{thousands(f.file_bytes)}</td>
                    <td class="num">{format!("{bits:.2}")}</td>
                    <td class="num">{ratio}</td>
                    <td class="num" data-testid="perplexity">{format!("{:.3}", f.perplexity)}</td>
                    <td class="num">{delta}</td>
                </tr>
            }
        })
        .collect_view();
    let summary = base.as_ref().map(|b| {
        let parts: Vec<String> = results
            .formats
            .iter()
            .filter(|f| f.name != "fp32")
            .map(|f| {
                format!(
                    "{} is {:.2}× smaller at perplexity {:.3}",
                    f.name,
                    b.file_bytes as f64 / f.file_bytes as f64,
                    f.perplexity
                )
            })
            .collect();
        format!(
            "fp32: {} bytes, perplexity {:.3}; {}.",
            thousands(b.file_bytes),
            b.perplexity,
            parts.join("; ")
        )
    });
    let samples = results
        .formats
        .iter()
        .map(|f| {
            view! {
                <div class="sample" data-format=f.name.clone()>
                    <span class="sample-step">{f.name.clone()}</span>
                    <pre>{f.sample.clone()}</pre>
                </div>
            }
        })
        .collect_view();
    view! {
        <div class="table-scroll">
            <table class="figures" data-testid="quant-table">
                <thead>
                    <tr>
                        <th>"format"</th>
                        <th>"file (bytes)"</th>
                        <th>"bits / parameter"</th>
                        <th>"smaller"</th>
                        <th>"perplexity"</th>
                        <th>"vs fp32"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
        <p class="stat" data-testid="quant-summary">{summary}</p>
        <p class="sample-step">"The same seed for every format: the samples part where a weight's rounding changes a draw."</p>
        <div class="samples quant-samples" data-testid="quant-samples">{samples}</div>
    }
}

/// Perplexity against sparsity, with the fp32 model's as a flat reference.
#[component]
fn Pruning(results: Results) -> impl IntoView {
    let curve: Vec<(f64, f64)> = results
        .pruned
        .iter()
        .map(|p| (f64::from(p.sparsity) * 100.0, f64::from(p.perplexity)))
        .collect();
    let mut series = vec![Series {
        name: "magnitude-pruned",
        class: "val",
        points: curve,
    }];
    if let Some(b) = fp32(&results) {
        series.push(Series {
            name: "fp32, unpruned",
            class: "train-eval",
            points: vec![
                (0.0, f64::from(b.perplexity)),
                (100.0, f64::from(b.perplexity)),
            ],
        });
    }
    let rows = results
        .pruned
        .iter()
        .map(|p| {
            view! {
                <tr>
                    <td class="num">{format!("{:.0}%", p.sparsity * 100.0)}</td>
                    <td class="num">{format!("{:.1}%", p.zero_fraction * 100.0)}</td>
                    <td class="num" data-testid="prune-perplexity">{format!("{:.3}", p.perplexity)}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <LossChart
            series=Signal::derive(move || series.clone())
            x_max=Signal::derive(|| 100.0)
            caption="validation perplexity against the sparsity of the block matrices (%)"
            testid="prune-chart"
        />
        <table class="figures" data-testid="prune-table">
            <thead>
                <tr>
                    <th>"sparsity of c_attn, c_proj, c_fc"</th>
                    <th>"zeros in the whole model"</th>
                    <th>"perplexity"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

/// fp32/fp16/int8/int4 weight memory of 7B and 70B models, and of ours (arithmetic, then
/// the files measured above).
#[component]
fn Memory(results: Results) -> impl IntoView {
    const BITS: [f64; 4] = [32.0, 16.0, 8.0, 4.0];
    let gb = |n: f64| {
        BITS.map(|b| format!("{:.1} GB", weight_bytes(n, b) / 1e9))
            .into_iter()
            .map(|s| view! { <td class="num">{s}</td> })
            .collect_view()
    };
    let n = results.n_params as f64;
    let ours = BITS
        .map(|b| thousands(weight_bytes(n, b).round() as usize))
        .into_iter()
        .map(|s| view! { <td class="num">{s}</td> })
        .collect_view();
    let file = |name: &str| {
        results
            .formats
            .iter()
            .find(|f| f.name == name)
            .map_or("—".to_string(), |f| thousands(f.file_bytes))
    };
    let int4 = results
        .formats
        .iter()
        .find(|f| f.name.starts_with("int4"))
        .map_or("—".to_string(), |f| thousands(f.file_bytes));
    view! {
        <table class="figures" data-testid="memory-table">
            <thead>
                <tr>
                    <th>"weights"</th>
                    <th>"fp32"</th>
                    <th>"fp16"</th>
                    <th>"int8"</th>
                    <th>"int4"</th>
                </tr>
            </thead>
            <tbody>
                <tr>
                    <td>"7B parameters"</td>
                    {gb(7e9)}
                </tr>
                <tr>
                    <td>"70B parameters"</td>
                    {gb(70e9)}
                </tr>
                <tr>
                    <td>{format!("ours, {} parameters (bytes)", thousands(results.n_params))}</td>
                    {ours}
                </tr>
                <tr data-testid="memory-measured">
                    <td>"ours, the files above (bytes)"</td>
                    <td class="num">{file("fp32")}</td>
                    <td class="num">"—"</td>
                    <td class="num">{file("int8-sym")}</td>
                    <td class="num">{int4}</td>
                </tr>
            </tbody>
        </table>
    }
}
