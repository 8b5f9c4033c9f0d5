//! One job, live: its loss curve (train steps and evaluations) and tokens/s from the event
//! stream, a progress bar, cancel, and its checkpoint loaded into this tab to sample from.
//! Opened late, the stream replays the job's whole history first, so the curve is complete.

use engine::protocol::{Job, JobEvent, JobId, JobState, Task};
use leptos::prelude::*;

use super::api::{Conn, EventStream};
use super::estimate::{FLOPS_PER_PARAM_TOKEN, duration, si};
use crate::charts::{LossChart, training_series};
use crate::widgets::thousands;
use crate::worker::{EngineClient, Event, Request};

#[component]
pub fn JobView(conn: StoredValue<Conn>, id: JobId, on_change: Callback<Job>) -> impl IntoView {
    let job = RwSignal::new(None::<Job>);
    let state = RwSignal::new(None::<JobState>);
    let state_message = RwSignal::new(None::<String>);
    let steps = RwSignal::new(Vec::<(f64, f64)>::new());
    let evals = RwSignal::new(Vec::<(f64, f64, f64)>::new());
    let tokens_per_sec = RwSignal::new(0.0f64);
    let checkpoint_step = RwSignal::new(None::<usize>);
    let problem = RwSignal::new(String::new());

    let refresh = move || {
        let conn = conn.get_value();
        wasm_bindgen_futures::spawn_local(async move {
            match conn.job(id).await {
                Ok(j) => {
                    if state.get_untracked().is_none() {
                        state.set(Some(j.state));
                    }
                    if checkpoint_step.get_untracked() < j.checkpoint_step {
                        checkpoint_step.set(j.checkpoint_step);
                    }
                    on_change.run(j.clone());
                    job.set(Some(j));
                }
                Err(e) => problem.set(format!("cannot read job {id}: {e}")),
            }
        });
    };
    refresh();

    let stream = StoredValue::new_local(None::<EventStream>);
    let opened = EventStream::open(&conn.get_value(), id, move |record| match record.event {
        JobEvent::Step(m) => {
            steps.update(|s| s.push((m.step as f64, f64::from(m.loss))));
            tokens_per_sec.set(m.tokens_per_sec);
        }
        JobEvent::Eval {
            step,
            train_loss,
            val_loss,
        } => evals.update(|e| e.push((step as f64, f64::from(train_loss), f64::from(val_loss)))),
        JobEvent::Checkpoint { step } => checkpoint_step.set(Some(step)),
        JobEvent::State { state: s, message } => {
            state.set(Some(s));
            state_message.set(message);
            if s.is_final() {
                // Closing (not dropping: this closure is the stream's own) stops the
                // browser from reconnecting.
                stream.with_value(|st| {
                    if let Some(st) = st {
                        st.close();
                    }
                });
            }
            refresh();
        }
    });
    match opened {
        Ok(s) => stream.set_value(Some(s)),
        Err(e) => problem.set(e),
    }

    let max_steps = move || job.with(|j| j.as_ref().map_or(1, |j| j.spec.train.max_steps));
    let last = move || steps.with(|s| s.last().copied());
    let n_params = move || job.with(|j| j.as_ref().and_then(|j| j.n_params));
    let running = move || matches!(state.get(), Some(JobState::Queued | JobState::Running));
    let cancel_requested = move || job.with(|j| j.as_ref().is_some_and(|j| j.cancel_requested));
    let cancel = move |_| {
        let conn = conn.get_value();
        wasm_bindgen_futures::spawn_local(async move {
            match conn.cancel(id).await {
                Ok(j) => {
                    on_change.run(j.clone());
                    job.set(Some(j));
                }
                Err(e) => problem.set(format!("cancel failed: {e}")),
            }
        });
    };

    let series = Signal::derive(move || training_series(steps.get(), &evals.get()));
    let summary = move || {
        job.get().map(|j| {
            let model = match &j.spec.task {
                Task::Pretrain { model, .. } => format!(
                    "{} layers × {} wide, {} heads, context {}",
                    model.n_layer, model.n_embd, model.n_head, model.block_size
                ),
                Task::FineTune { base_job } => format!("fine-tune of job {base_job}"),
            };
            let took = match (j.started_at_ms, j.finished_at_ms) {
                (Some(a), Some(b)) => format!(" · took {}", duration((b - a) as f64 / 1000.0)),
                _ => String::new(),
            };
            format!(
                "{model} · corpus {} · {} steps of {} sequences{}{took}",
                j.spec.corpus,
                j.spec.train.max_steps,
                j.spec.train.batch_size,
                j.device.map(|d| format!(" · on {d}")).unwrap_or_default(),
            )
        })
    };
    let state_text = move || match state.get() {
        None => "loading".to_string(),
        Some(s) => match state_message.get() {
            Some(m) if s == JobState::Failed => format!("failed: {m}"),
            _ => s.as_str().to_string(),
        },
    };

    view! {
        <section class="runner-job" data-testid="runner-job" data-job=id>
            <h3>
                {move || {
                    let name = job.with(|j| j.as_ref().map(|j| j.spec.name.clone()).unwrap_or_default());
                    if name.is_empty() { format!("Job {id}") } else { format!("Job {id}: {name}") }
                }}
                " "
                <span class=move || format!("job-state {}", state.get().map_or("", |s| s.as_str())) data-testid="job-state">
                    {state_text}
                </span>
            </h3>
            <p class="model-info">{summary}</p>
            <div class="stats">
                <span>
                    "step "
                    <strong data-testid="job-step">{move || last().map_or(0, |l| l.0 as usize)}</strong>
                    {move || format!(" / {}", max_steps())}
                </span>
                <span>
                    "loss "
                    <strong data-testid="job-loss">
                        {move || last().map_or("–".into(), |l| format!("{:.3}", l.1))}
                    </strong>
                </span>
                <span>
                    "val "
                    <strong data-testid="job-val-loss">
                        {move || evals.with(|e| e.last().map_or("–".into(), |e| format!("{:.3}", e.2)))}
                    </strong>
                </span>
                <span>
                    <strong data-testid="job-tokens-per-sec">{move || thousands(tokens_per_sec.get() as usize)}</strong>
                    " tokens/s"
                </span>
                <span title="tokens/s × 6 × parameters">
                    {move || {
                        n_params()
                            .filter(|_| tokens_per_sec.get() > 0.0)
                            .map(|n| {
                                format!(
                                    "{}FLOP/s achieved",
                                    si(tokens_per_sec.get() * FLOPS_PER_PARAM_TOKEN * n as f64),
                                )
                            })
                    }}
                </span>
            </div>
            <progress
                max=max_steps
                value=move || last().map_or(0.0, |l| l.0)
                aria-label="job progress"
                data-testid="job-progress"
            ></progress>
            <LossChart series=series x_max=Signal::derive(move || max_steps() as f64) />
            <div class="controls">
                <button
                    class="danger"
                    data-testid="job-cancel"
                    on:click=cancel
                    disabled=move || !running() || cancel_requested()
                >
                    {move || if cancel_requested() { "Cancelling…" } else { "Cancel job" }}
                </button>
                <span class="stat" data-testid="job-checkpoint">
                    {move || match checkpoint_step.get() {
                        Some(step) => format!("checkpoint at step {step}"),
                        None => "no checkpoint yet".into(),
                    }}
                </span>
            </div>
            <p class="problem" hidden=move || problem.with(String::is_empty)>{move || problem.get()}</p>
            <Show when=move || checkpoint_step.get().is_some()>
                <LoadCheckpoint conn=conn id=id step=checkpoint_step />
            </Show>
        </section>
    }
}

/// Loads the job's latest checkpoint into the engine worker, the path the shipped model takes
/// (`Request::LoadModel` with a checkpoint folder URL), and samples from it.
#[component]
fn LoadCheckpoint(
    conn: StoredValue<Conn>,
    id: JobId,
    step: RwSignal<Option<usize>>,
) -> impl IntoView {
    let url = conn.with_value(|c| c.checkpoint_url(id));
    let loaded = RwSignal::new(None::<String>);
    let loading = RwSignal::new(false);
    let problem = RwSignal::new(String::new());
    let prompt = RwSignal::new("And God said".to_string());
    let output = RwSignal::new(String::new());
    let generating = RwSignal::new(false);
    let seed = RwSignal::new(0u64);

    let client = EngineClient::get();
    let mine = url.clone();
    let subscription = client.as_ref().ok().map(|client| {
        client.subscribe(move |ev| match ev {
            Event::ModelLoaded {
                url,
                n_params,
                vocab_size,
                step,
                val_loss,
            } if *url == mine => {
                loading.set(false);
                loaded.set(Some(format!(
                    "Loaded into this tab: step {step}, {} parameters, vocabulary {vocab_size}{}.",
                    thousands(*n_params),
                    val_loss.map_or(String::new(), |l| format!(", validation loss {l:.3}"))
                )));
            }
            Event::Error { what, message } if *what == format!("load {mine}") => {
                loading.set(false);
                problem.set(format!("loading failed: {message}"));
            }
            Event::Error { what, message } if what == "generate" && generating.get_untracked() => {
                generating.set(false);
                problem.set(format!("generation failed: {message}"));
            }
            // The worker samples a loaded checkpoint as its "shipped" model (trained: false).
            Event::Generated {
                trained: false,
                text,
                done,
                ..
            } if generating.get_untracked() => {
                output.set(text.clone());
                if *done {
                    generating.set(false);
                }
            }
            _ => {}
        })
    });
    StoredValue::new_local(subscription);
    if let Err(e) = &client {
        problem.set(e.clone());
    }

    let load_url = url.clone();
    let load = move |_| {
        let Ok(client) = EngineClient::get() else {
            return;
        };
        loading.set(true);
        loaded.set(None);
        problem.set(String::new());
        client.send(&Request::LoadModel {
            url: load_url.clone(),
        });
    };
    let generate = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Ok(client) = EngineClient::get() else {
            return;
        };
        seed.update(|s| *s += 1);
        generating.set(true);
        output.set(String::new());
        problem.set(String::new());
        client.send(&Request::Generate {
            trained: false,
            prompt: prompt.get_untracked(),
            max_new_tokens: 200,
            temperature: 0.8,
            seed: seed.get_untracked(),
        });
    };

    view! {
        <div class="runner-sample" data-testid="runner-sample">
            <div class="controls">
                <button data-testid="job-load" on:click=load disabled=move || loading.get()>
                    {move || match (loading.get(), step.get()) {
                        (true, _) => "Loading…".to_string(),
                        (false, Some(s)) => format!("Load the step-{s} checkpoint into this browser"),
                        (false, None) => "Load the checkpoint into this browser".to_string(),
                    }}
                </button>
                <span class="stat" data-testid="job-loaded">{move || loaded.get()}</span>
            </div>
            <Show when=move || loaded.with(Option::is_some)>
                <form class="controls" on:submit=generate>
                    <label>
                        "Prompt "
                        <input
                            type="text"
                            data-testid="job-prompt"
                            prop:value=move || prompt.get()
                            on:input=move |ev| prompt.set(event_target_value(&ev))
                        />
                    </label>
                    <button type="submit" class="primary" data-testid="job-generate" disabled=move || generating.get()>
                        {move || if generating.get() { "Generating…" } else { "Generate" }}
                    </button>
                </form>
            </Show>
            <pre class="generated" data-testid="job-sample-output">{move || output.get()}</pre>
            <p class="problem" hidden=move || problem.with(String::is_empty)>{move || problem.get()}</p>
        </div>
    }
}
