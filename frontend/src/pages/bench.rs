//! `/bench`: the engine's benchmark (`engine::bench`, the cases `cargo xtask bench` runs
//! natively) in this browser's engine worker. `cargo xtask bench` opens `/bench?run=1` in
//! headless Chromium and reads the figures from `data-testid="bench-json"`.

use engine::bench::{BenchConfig, Figure};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::widgets::thousands;
use crate::worker::{EngineClient, Event, Request};

/// The workload of `cargo xtask bench`, compiled in: the browser measures the same model.
const CONFIG: &str = include_str!("../../../bench/config.json");

#[derive(Clone, PartialEq)]
enum State {
    Idle,
    Running,
    Done,
    Failed(String),
}

#[component]
pub fn BenchPage() -> impl IntoView {
    let config: BenchConfig = serde_json::from_str(CONFIG).expect("bench/config.json is valid");
    let (m, t, s) = (
        config.model.clone(),
        config.train.clone(),
        config.sample.clone(),
    );
    let config = StoredValue::new(config);

    let state = RwSignal::new(State::Idle);
    let figures = RwSignal::new(Vec::<Figure>::new());
    let progress = RwSignal::new((0usize, 1usize));

    let subscription = EngineClient::get().ok().map(|client| {
        client.subscribe(move |ev| match ev {
            Event::Progress { what, done, total } if what.starts_with("bench") => {
                progress.set((*done, *total));
            }
            Event::BenchFigure { figure } => figures.update(|f| f.push(figure.clone())),
            Event::BenchDone => state.set(State::Done),
            Event::Error { what, message } if what == "bench" => {
                state.set(State::Failed(message.clone()));
            }
            _ => {}
        })
    });
    StoredValue::new_local(subscription);

    let run = move || {
        let client = match EngineClient::get() {
            Ok(c) => c,
            Err(e) => return state.set(State::Failed(e)),
        };
        figures.set(Vec::new());
        progress.set((0, 1));
        state.set(State::Running);
        client.send(&Request::Bench {
            config: config.get_value(),
        });
    };
    if use_query_map().get_untracked().get("run").as_deref() == Some("1") {
        run();
    }

    view! {
        <section class="page narrow bench-page" data-testid="bench-page">
            <h1>"The engine's benchmark, in this browser"</h1>
            <p>
                "The same cases "<code>"cargo xtask bench"</code>" runs natively with candle, here in
                 WebAssembly inside this tab's engine worker (one thread, SIMD128). Compare the
                 figures with the native ones in "<code>"target/bench/summary.json"</code>"."
            </p>
            <p class="model-info">
                {format!(
                    "Model: {} layers, {} heads, width {}, context {}, vocabulary {} ({} parameters). \
                     Training: batch {} × {} tokens, {} warm-up + {} timed AdamW steps. \
                     Sampling: {} new tokens, {} timed runs, with and without the KV cache. \
                     Then tokens/s at 64, 256 and 1024 positions with and without the cache \
                     (random weights), and an int8 against an f32 matmul.",
                    m.n_layer, m.n_head, m.n_embd, m.block_size, m.vocab_size,
                    thousands(m.n_params()), t.batch_size, m.block_size, t.warmup_steps,
                    t.timed_steps, s.max_new_tokens, s.timed_runs,
                )}
            </p>
            <button
                data-testid="bench-run"
                disabled=move || state.get() == State::Running
                on:click=move |_| run()
            >
                {move || if state.get() == State::Running { "Running…" } else { "Run the benchmark" }}
            </button>
            <Show when=move || state.get() == State::Running>
                <progress
                    max=move || progress.get().1
                    value=move || progress.get().0
                    aria-label="benchmark progress"
                ></progress>
                <span class="meta">
                    {move || {
                        let (d, t) = progress.get();
                        if d < t { format!(" training step {d} of {t}") } else { " sampling…".into() }
                    }}
                </span>
            </Show>
            {move || match state.get() {
                State::Failed(e) => view! { <p class="problem">{format!("benchmark failed: {e}")}</p> }.into_any(),
                _ => ().into_any(),
            }}
            <Show when=move || !figures.get().is_empty()>
            <table class="figures">
                <thead><tr><th>"case"</th><th>"value"</th><th>"unit"</th></tr></thead>
                <tbody>
                    {move || figures.get().into_iter().map(|f| view! {
                        <tr><td>{f.name}</td><td class="num">{format!("{:.1}", f.value)}</td><td>{f.unit}</td></tr>
                    }).collect_view()}
                </tbody>
            </table>
            </Show>
            <Show when=move || state.get() == State::Done>
                <pre data-testid="bench-json" class="meta">
                    {move || serde_json::to_string(&figures.get()).unwrap_or_default()}
                </pre>
            </Show>
        </section>
    }
}
