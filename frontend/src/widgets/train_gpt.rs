//! Trains the character-level GPT in the engine worker, with a live loss chart, tokens/s,
//! pause/resume and samples as it learns.

use leptos::prelude::*;

use super::config::TrainGptConfig;
use super::thousands;
use crate::charts::{LossChart, training_series};
use crate::worker::protocol::TrainSpec;
use crate::worker::{EngineClient, Event, Request};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Idle,
    Preparing,
    Running,
    Paused,
    Done,
}

#[component]
pub fn TrainGpt(config: TrainGptConfig) -> impl IntoView {
    let phase = RwSignal::new(Phase::Idle);
    let run_id = RwSignal::new(0u32);
    let steps = RwSignal::new(Vec::<(f64, f64)>::new());
    let evals = RwSignal::new(Vec::<(f64, f64, f64)>::new());
    let samples = RwSignal::new(Vec::<(usize, String)>::new());
    let tokens_per_sec = RwSignal::new(0.0f64);
    let status = RwSignal::new(String::new());
    let model_info = RwSignal::new(String::new());
    let clicks = RwSignal::new(0u32);
    let max_steps = config.train.max_steps;

    let client = EngineClient::get();
    let subscription = client.as_ref().ok().map(|client| {
        client.subscribe(move |ev| {
            let current = run_id.get_untracked();
            match ev {
                Event::Progress { what, done, total }
                    if phase.get_untracked() == Phase::Preparing =>
                {
                    status.set(format!("{what}: {done}/{total}"));
                }
                Event::TrainingStarted {
                    run,
                    n_params,
                    vocab_size,
                    train_tokens,
                } if *run == current => {
                    phase.set(Phase::Running);
                    status.set(String::new());
                    model_info.set(format!(
                        "{} parameters · vocabulary {} characters · {} training tokens",
                        thousands(*n_params),
                        vocab_size,
                        thousands(*train_tokens)
                    ));
                }
                Event::Step {
                    run,
                    step,
                    loss,
                    tokens_per_sec: tps,
                    ..
                } if *run == current => {
                    steps.update(|s| s.push((*step as f64, f64::from(*loss))));
                    tokens_per_sec.set(*tps);
                }
                Event::Eval {
                    run,
                    step,
                    train,
                    val,
                } if *run == current => {
                    evals.update(|e| e.push((*step as f64, f64::from(*train), f64::from(*val))));
                }
                Event::Sample { run, step, text } if *run == current => {
                    samples.update(|s| {
                        s.insert(0, (*step, text.clone()));
                        s.truncate(4);
                    });
                }
                Event::Paused { run } if *run == current => phase.set(Phase::Paused),
                Event::Resumed { run } if *run == current => phase.set(Phase::Running),
                Event::TrainingDone { run, .. } if *run == current => phase.set(Phase::Done),
                Event::Error { what, message } if what == "training" => {
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

    let spec = TrainSpec {
        corpus_url: config.corpus.clone(),
        n_layer: config.model.n_layer,
        n_head: config.model.n_head,
        n_embd: config.model.n_embd,
        block_size: config.model.block_size,
        batch_size: config.train.batch_size,
        learning_rate: config.train.learning_rate,
        max_steps: config.train.max_steps,
        eval_interval: config.train.eval_interval,
        sample_interval: config.sample_interval,
    };
    let start = move |_| {
        let Ok(client) = EngineClient::get() else {
            status.set("the engine worker could not start in this browser".into());
            return;
        };
        run_id.update(|r| *r += 1);
        steps.set(Vec::new());
        evals.set(Vec::new());
        samples.set(Vec::new());
        tokens_per_sec.set(0.0);
        phase.set(Phase::Preparing);
        status.set("Loading the corpus and building the model…".into());
        client.send(&Request::StartTraining {
            run: run_id.get_untracked(),
            spec: spec.clone(),
        });
    };
    let pause = move |_| {
        clicks.update(|c| *c += 1);
        if let Ok(client) = EngineClient::get() {
            match phase.get_untracked() {
                Phase::Running => client.send(&Request::Pause),
                Phase::Paused => client.send(&Request::Resume),
                _ => {}
            }
        }
    };
    let stop = move |_| {
        if let Ok(client) = EngineClient::get() {
            client.send(&Request::Stop);
        }
        phase.set(Phase::Done);
    };

    let series = Signal::derive(move || training_series(steps.get(), &evals.get()));
    let last = move || steps.with(|s| s.last().copied());
    let busy = move || {
        matches!(
            phase.get(),
            Phase::Running | Phase::Paused | Phase::Preparing
        )
    };

    view! {
        <div class="train-gpt" data-testid="train-gpt">
            <p class="widget-title">
                {format!(
                    "Train a GPT here: {} layers, {} heads, {}-dim embeddings, context {} characters, {} steps of {} sequences.",
                    config.model.n_layer,
                    config.model.n_head,
                    config.model.n_embd,
                    config.model.block_size,
                    config.train.max_steps,
                    config.train.batch_size,
                )}
            </p>
            <div class="controls">
                <button class="primary" data-testid="train-start" on:click=start disabled=busy>
                    {move || if phase.get() == Phase::Idle { "Start training" } else { "Train again" }}
                </button>
                <button
                    data-testid="train-pause"
                    on:click=pause
                    disabled=move || !matches!(phase.get(), Phase::Running | Phase::Paused)
                >
                    {move || if phase.get() == Phase::Paused { "Resume" } else { "Pause" }}
                </button>
                <button data-testid="train-stop" on:click=stop disabled=move || !busy()>
                    "Stop"
                </button>
                <span class="stat" data-testid="train-phase">
                    {move || match phase.get() {
                        Phase::Idle => "not started",
                        Phase::Preparing => "preparing",
                        Phase::Running => "training",
                        Phase::Paused => "paused",
                        Phase::Done => "finished",
                    }}
                </span>
                <span class="visually-hidden" data-testid="clicks">{move || clicks.get()}</span>
            </div>
            <p class="status">{move || status.get()}</p>
            <p class="model-info">{move || model_info.get()}</p>
            <div class="stats">
                <span>
                    "step "
                    <strong data-testid="train-step">
                        {move || last().map_or(0, |l| l.0 as usize)}
                    </strong>
                    {format!(" / {max_steps}")}
                </span>
                <span>
                    "loss "
                    <strong data-testid="train-loss">
                        {move || last().map_or("–".into(), |l| format!("{:.3}", l.1))}
                    </strong>
                </span>
                <span>
                    "val "
                    <strong data-testid="val-loss">
                        {move || evals.with(|e| e.last().map_or("–".into(), |e| format!("{:.3}", e.2)))}
                    </strong>
                </span>
                <span>
                    <strong data-testid="tokens-per-sec">
                        {move || thousands(tokens_per_sec.get() as usize)}
                    </strong>
                    " tokens/s"
                </span>
            </div>
            <progress
                max=max_steps
                value=move || last().map_or(0.0, |l| l.0)
                aria-label="training progress"
            ></progress>
            <LossChart series=series x_max=Signal::derive(move || max_steps as f64) />
            <div class="samples" data-testid="samples" aria-live="polite">
                <For
                    each=move || samples.get()
                    key=|(step, _)| *step
                    children=move |(step, text)| {
                        view! {
                            <div class="sample">
                                <span class="sample-step">{format!("step {step}")}</span>
                                <pre>{text}</pre>
                            </div>
                        }
                    }
                />
            </div>
        </div>
    }
}
