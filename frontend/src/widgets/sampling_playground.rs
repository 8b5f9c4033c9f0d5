//! The decoding playground: the shipped model's next-token distribution as a bar chart with
//! the top-k and top-p cuts drawn, stepped one token at a time with a fixed seed.

use leptos::prelude::*;

use super::config::SamplingPlaygroundConfig;
use crate::worker::protocol::Candidate;
use crate::worker::{EngineClient, Event, Request};

/// What the worker last reported.
#[derive(Clone, Debug, PartialEq)]
struct Decoded {
    steps: usize,
    text: String,
    candidates: Vec<Candidate>,
    top_k_cut: Option<usize>,
    top_p_cut: Option<usize>,
    next: Candidate,
}

/// A token's text made visible: newline and space would be invisible as bar labels.
fn label(text: &str) -> String {
    match text {
        "\n" => "⏎".into(),
        " " => "␣".into(),
        t => t.into(),
    }
}

#[component]
pub fn SamplingPlayground(config: SamplingPlaygroundConfig) -> impl IntoView {
    let url = config.model.clone();
    let loaded = RwSignal::new(false);
    let problem = RwSignal::new(None::<String>);
    let prompt = RwSignal::new(config.prompt.clone());
    let temperature = RwSignal::new(config.temperature);
    // 0 means off for both cuts, so the inputs stay plain numbers.
    let top_k = RwSignal::new(0usize);
    let top_p = RwSignal::new(1.0f32);
    let penalty = RwSignal::new(1.0f32);
    let seed = RwSignal::new(config.seed);
    let steps = RwSignal::new(0usize);
    let decoded = RwSignal::new(None::<Decoded>);

    let client = EngineClient::get();
    let url2 = url.clone();
    let subscription = client.as_ref().ok().map(|client| {
        client.subscribe(move |ev| match ev {
            Event::ModelLoaded { url, .. } if *url == url2 => loaded.set(true),
            Event::Error { what, message }
                if *what == format!("load {url2}") || what == "decode" =>
            {
                problem.set(Some(message.clone()));
            }
            Event::Decoded {
                steps,
                text,
                candidates,
                top_k_cut,
                top_p_cut,
                next,
            } => {
                problem.set(None);
                decoded.set(Some(Decoded {
                    steps: *steps,
                    text: text.clone(),
                    candidates: candidates.clone(),
                    top_k_cut: *top_k_cut,
                    top_p_cut: *top_p_cut,
                    next: next.clone(),
                }));
            }
            _ => {}
        })
    });
    StoredValue::new_local(subscription);
    match &client {
        Ok(client) => client.send(&Request::LoadModel { url: url.clone() }),
        Err(e) => problem.set(Some(e.clone())),
    }

    // Any change of a setting or of the step count asks the worker again: the chart is live.
    let url3 = url.clone();
    Effect::new(move |_| {
        let sampling = engine::sample::SamplingConfig {
            temperature: temperature.get(),
            top_k: Some(top_k.get()).filter(|&k| k > 0),
            top_p: Some(top_p.get()).filter(|&p| p < 1.0),
            seed: seed.get(),
            repetition_penalty: penalty.get(),
        };
        let request = Request::DecodeStep {
            url: url3.clone(),
            prompt: prompt.get(),
            steps: steps.get(),
            sampling,
        };
        if loaded.get()
            && let Ok(client) = EngineClient::get()
        {
            client.send(&request);
        }
    });

    let prompt_len = move || prompt.with(|p| p.chars().count());
    let number = |ev: &leptos::ev::Event| event_target_value(ev).trim().to_string();

    view! {
        <div class="sampling-playground" data-testid="sampling-playground">
            <p class="widget-title">"Sampling playground"</p>
            <p class="model-info" data-testid="playground-state">
                {move || match (loaded.get(), problem.get()) {
                    (_, Some(why)) => format!("Problem: {why}"),
                    (false, None) => "Loading the pre-trained model…".to_string(),
                    (true, None) => {
                        "The pre-trained character model is loaded: change a setting or step."
                            .to_string()
                    }
                }}
            </p>
            <div class="controls">
                <label>
                    "Prompt "
                    <input
                        type="text"
                        size="40"
                        data-testid="playground-prompt"
                        prop:value=move || prompt.get()
                        on:change=move |ev| {
                            prompt.set(event_target_value(&ev));
                            steps.set(0);
                        }
                    />
                </label>
            </div>
            <div class="controls">
                <label>
                    {move || {
                        let t = temperature.get();
                        if t == 0.0 {
                            "temperature 0 (greedy) ".to_string()
                        } else {
                            format!("temperature {t:.2} ")
                        }
                    }}
                    <input
                        type="range"
                        min="0"
                        max="2"
                        step="0.05"
                        data-testid="playground-temperature"
                        prop:value=move || temperature.get().to_string()
                        on:input=move |ev| temperature.set(number(&ev).parse().unwrap_or(1.0))
                    />
                </label>
                <label>
                    "top-k (0 = off) "
                    <input
                        type="number"
                        min="0"
                        max="100"
                        class="small-number"
                        data-testid="playground-top-k"
                        prop:value=move || top_k.get().to_string()
                        on:input=move |ev| top_k.set(number(&ev).parse().unwrap_or(0))
                    />
                </label>
                <label>
                    {move || {
                        let p = top_p.get();
                        if p >= 1.0 { "top-p off ".to_string() } else { format!("top-p {p:.2} ") }
                    }}
                    <input
                        type="range"
                        min="0.05"
                        max="1"
                        step="0.05"
                        data-testid="playground-top-p"
                        prop:value=move || top_p.get().to_string()
                        on:input=move |ev| top_p.set(number(&ev).parse().unwrap_or(1.0))
                    />
                </label>
                <label>
                    {move || format!("repetition penalty {:.2} ", penalty.get())}
                    <input
                        type="range"
                        min="1"
                        max="2"
                        step="0.05"
                        data-testid="playground-penalty"
                        prop:value=move || penalty.get().to_string()
                        on:input=move |ev| penalty.set(number(&ev).parse().unwrap_or(1.0))
                    />
                </label>
                <label>
                    "seed "
                    <input
                        type="number"
                        min="0"
                        class="small-number"
                        data-testid="playground-seed"
                        prop:value=move || seed.get().to_string()
                        on:input=move |ev| seed.set(number(&ev).parse().unwrap_or(0))
                    />
                </label>
            </div>
            <div class="controls">
                <button
                    class="primary"
                    data-testid="playground-step"
                    disabled=move || !loaded.get()
                    on:click=move |_| steps.update(|s| *s += 1)
                >
                    "Step"
                </button>
                <button
                    data-testid="playground-ahead"
                    disabled=move || !loaded.get()
                    on:click=move |_| steps.update(|s| *s += 40)
                >
                    "+40 tokens"
                </button>
                <button data-testid="playground-reset" on:click=move |_| steps.set(0)>
                    "Reset"
                </button>
                <span class="stat" data-testid="playground-steps">
                    {move || format!("{} tokens generated", steps.get())}
                </span>
            </div>
            <pre class="generated" data-testid="playground-text">
                {move || {
                    decoded
                        .get()
                        .map(|d| {
                            let cut = d
                                .text
                                .char_indices()
                                .nth(prompt_len())
                                .map_or(d.text.len(), |(i, _)| i);
                            let (head, tail) = d.text.split_at(cut);
                            view! {
                                <span class="prompt-text">{head.to_string()}</span>
                                <span class="generated-text">{tail.to_string()}</span>
                                <span class="next-token" data-testid="playground-next">
                                    {label(&d.next.text)}
                                </span>
                            }
                        })
                }}
            </pre>
            {move || decoded.get().map(|d| view! { <DistributionChart decoded=d /> })}
        </div>
    }
}

/// Bars of the next-token probabilities, most likely first, with the cuts drawn.
#[component]
fn DistributionChart(decoded: Decoded) -> impl IntoView {
    const W: f64 = 640.0;
    const H: f64 = 220.0;
    const LEFT: f64 = 40.0;
    const TOP: f64 = 16.0;
    const BOTTOM: f64 = 34.0;
    let n = decoded.candidates.len().max(1);
    let slot = (W - LEFT - 8.0) / n as f64;
    let y_max = decoded
        .candidates
        .iter()
        .map(|c| c.prob.max(c.kept) as f64)
        .fold(0.0, f64::max)
        .max(1e-3);
    let sy = move |p: f64| TOP + (1.0 - p / y_max) * (H - TOP - BOTTOM);
    let bars = decoded
        .candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let x = LEFT + i as f64 * slot;
            let kept = c.kept > 0.0;
            let chosen = c.id == decoded.next.id;
            let class = match (kept, chosen) {
                (_, true) => "bar kept chosen",
                (true, false) => "bar kept",
                (false, false) => "bar cut",
            };
            let testid = if kept { "bar-kept" } else { "bar-cut" };
            let p = c.prob as f64;
            view! {
                <rect
                    class=class
                    data-testid=testid
                    x=x + 2.0
                    y=sy(p)
                    width=(slot - 4.0).max(1.0)
                    height=(H - BOTTOM - sy(p)).max(0.5)
                >
                    <title>
                        {format!(
                            "{:?}: p = {:.3} before the cuts, {:.3} after",
                            c.text,
                            c.prob,
                            c.kept,
                        )}
                    </title>
                </rect>
                <text class="tick bar-label" x=x + slot / 2.0 y=H - BOTTOM + 14.0 text-anchor="middle">
                    {label(&c.text)}
                </text>
            }
        })
        .collect_view();
    // A cut after rank r is a vertical line between bar r-1 and bar r.
    let cut = |rank: Option<usize>, name: &'static str, class: &'static str, dy: f64| {
        rank.filter(|&r| r < n).map(|r| {
            let x = LEFT + r as f64 * slot;
            view! {
                <line class=format!("cut {class}") x1=x x2=x y1=TOP - 6.0 y2=H - BOTTOM + 4.0></line>
                <text class=format!("cut-label {class}") x=x + 4.0 y=TOP + dy>{name}</text>
            }
        })
    };
    let y_ticks = (0..=2)
        .map(|i| {
            let p = y_max * f64::from(i) / 2.0;
            let y = sy(p);
            view! {
                <line class="grid" x1=LEFT x2=W - 8.0 y1=y y2=y></line>
                <text class="tick" x=LEFT - 4.0 y=y + 4.0 text-anchor="end">{format!("{p:.2}")}</text>
            }
        })
        .collect_view();
    let summary = format!(
        "Next token {:?}: p = {:.3} before the cuts, {:.3} after them.",
        label(&decoded.next.text),
        decoded.next.prob,
        decoded.next.kept
    );
    view! {
        <figure class="chart distribution-chart">
            <svg
                viewBox=format!("0 0 {W} {H}")
                role="img"
                aria-label="next-token probabilities, most likely first"
                data-testid="distribution-chart"
            >
                {y_ticks}
                <line class="axis" x1=LEFT x2=W - 8.0 y1=H - BOTTOM y2=H - BOTTOM></line>
                {bars}
                {cut(decoded.top_k_cut, "top-k", "top-k", 4.0)}
                {cut(decoded.top_p_cut, "top-p", "top-p", 18.0)}
            </svg>
            <figcaption>
                <span class="legend-item kept">"kept"</span>
                <span class="legend-item cut">"cut off"</span>
                <span class="legend-item chosen">"drawn by the seed"</span>
                <span data-testid="playground-summary">{summary}</span>
            </figcaption>
        </figure>
    }
}
