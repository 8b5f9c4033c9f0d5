//! The site's side of the native runner: connect to a runner, estimate and submit a
//! pretraining job, watch it live, list past jobs, and load a checkpoint back into this tab.
//! [`RunnerConsole`] is the `/runner` page and the `runner` widget of lesson D3.

pub mod api;
mod estimate;
mod form;
mod job;

use engine::protocol::{CorpusInfo, Health, Job, JobId, JobState};
use leptos::prelude::*;

use crate::storage;
pub use crate::widgets::config::RunnerConfig;
use crate::widgets::thousands;
use api::Conn;
use estimate::Throughput;
use form::JobForm;
use job::JobView;

const URL_KEY: &str = "aw.runner.url";
const TOKEN_KEY: &str = "aw.runner.token";

/// The runner serves the site, so by default it is this page's own origin.
fn page_origin() -> String {
    web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default()
}

#[component]
pub fn RunnerConsole(config: RunnerConfig) -> impl IntoView {
    let url = RwSignal::new(storage::get(URL_KEY).unwrap_or_else(page_origin));
    let token = RwSignal::new(storage::get(TOKEN_KEY).unwrap_or_default());
    // The connection the rest of the console uses (its token follows the token field), and
    // whether /api/health answered there.
    let current = StoredValue::new(Conn {
        base: String::new(),
        token: String::new(),
    });
    let connected = RwSignal::new(false);
    let health = RwSignal::new(None::<Health>);
    let connecting = RwSignal::new(false);
    let problem = RwSignal::new(String::new());
    let jobs = RwSignal::new(Vec::<Job>::new());
    let corpora = RwSignal::new(Vec::<CorpusInfo>::new());
    let measured = RwSignal::new(None::<Throughput>);
    let selected = RwSignal::new(None::<JobId>);
    // Watching the job already watched keeps its stream rather than opening a new one.
    let watched = Memo::new(move |_| selected.get());

    // The runner's own throughput, from the newest job that has trained some steps.
    let measure = move |conn: Conn, jobs: Vec<Job>| {
        wasm_bindgen_futures::spawn_local(async move {
            let candidate = jobs
                .iter()
                .find(|j| j.step > 0 && j.n_params.is_some() && j.state != JobState::Queued);
            if let Some(job) = candidate
                && let Ok(metrics) = conn.metrics(job.id).await
                && let Some(t) = Throughput::measured(job, &metrics)
            {
                measured.set(Some(t));
            }
        });
    };
    let reload = move || {
        if !connected.get_untracked() {
            return;
        }
        let conn = current.get_value();
        wasm_bindgen_futures::spawn_local(async move {
            match conn.jobs().await {
                Ok(list) => {
                    measure(conn.clone(), list.clone());
                    jobs.set(list);
                }
                Err(e) => problem.set(format!("cannot list jobs: {e}")),
            }
            if let Ok(list) = conn.corpora().await {
                corpora.set(list);
            }
            if let Ok(h) = conn.health().await {
                health.set(Some(h));
            }
        });
    };
    let connect = move || {
        let conn = Conn {
            base: url.get_untracked().trim().trim_end_matches('/').to_string(),
            token: token.get_untracked().trim().to_string(),
        };
        connecting.set(true);
        problem.set(String::new());
        wasm_bindgen_futures::spawn_local(async move {
            match conn.health().await {
                Ok(h) => {
                    storage::set(URL_KEY, &conn.base);
                    storage::set(TOKEN_KEY, &conn.token);
                    health.set(Some(h));
                    current.set_value(conn);
                    connected.set(true);
                    reload();
                }
                Err(e) => {
                    connected.set(false);
                    health.set(None);
                    problem.set(format!(
                        "no runner answered at {}: {e}. Start one with `cargo run --release -p runner -- --site dist` and open this page from it.",
                        conn.base
                    ));
                }
            }
            connecting.set(false);
        });
    };
    connect();

    let throughput = Signal::derive(move || {
        measured.get().unwrap_or_else(|| {
            let device =
                health.with(|h| h.as_ref().map_or("cpu".to_string(), |h| h.device.clone()));
            Throughput::Assumed {
                flops_per_sec: estimate::assumed_flops_per_sec(&device),
                device,
            }
        })
    });
    // A watched job changed: update its row, and the measurement once it has steps.
    let on_change = Callback::new(move |job: Job| {
        let finished = job.state.is_final();
        jobs.update(|list| match list.iter_mut().find(|j| j.id == job.id) {
            Some(j) => *j = job,
            None => list.insert(0, job),
        });
        if finished {
            reload();
        }
    });

    view! {
        <div class="runner-console" data-testid="runner-console">
            <form
                class="controls runner-connect"
                on:submit=move |ev| {
                    ev.prevent_default();
                    connect();
                }
            >
                <label class="field">
                    <span>"runner URL"</span>
                    <input
                        type="url"
                        size="28"
                        data-testid="runner-url"
                        prop:value=move || url.get()
                        on:input=move |ev| url.set(event_target_value(&ev))
                    />
                </label>
                <label class="field">
                    <span>"token (for submitting)"</span>
                    <input
                        type="password"
                        size="28"
                        autocomplete="off"
                        data-testid="runner-token"
                        prop:value=move || token.get()
                        on:input=move |ev| {
                            let value = event_target_value(&ev);
                            storage::set(TOKEN_KEY, value.trim());
                            current.update_value(|c| c.token = value.trim().to_string());
                            token.set(value);
                        }
                    />
                </label>
                <button type="submit" data-testid="runner-connect" disabled=move || connecting.get()>
                    {move || if connecting.get() { "Connecting…" } else { "Connect" }}
                </button>
            </form>
            <p class="status" data-testid="runner-health">
                {move || match health.get() {
                    Some(h) => format!(
                        "Connected: runner {} training on {} · {} running, {} queued (at most {} at a time).",
                        h.version, h.device, h.running, h.queued, h.max_concurrent_jobs
                    ),
                    None if connecting.get() => "Connecting…".into(),
                    None => "Not connected.".into(),
                }}
            </p>
            <p class="problem" hidden=move || problem.with(String::is_empty) data-testid="runner-problem">
                {move || problem.get()}
            </p>
            {move || {
                connected
                    .get()
                    .then(|| {
                        let conn = current;
                        view! {
                            <JobForm
                                conn=conn
                                config=config.clone()
                                jobs=jobs
                                corpora=corpora
                                throughput=throughput
                                selected=selected
                            />
                            <JobList jobs=jobs selected=selected on_refresh=Callback::new(move |()| reload()) />
                            {move || {
                                watched
                                    .get()
                                    .map(|id| view! { <JobView conn=conn id=id on_change=on_change /> })
                            }}
                        }
                    })
            }}
        </div>
    }
}

#[component]
fn JobList(
    jobs: RwSignal<Vec<Job>>,
    selected: RwSignal<Option<JobId>>,
    on_refresh: Callback<()>,
) -> impl IntoView {
    view! {
        <div class="runner-jobs">
            <div class="controls">
                <strong>"Jobs on this runner"</strong>
                <button type="button" data-testid="runner-refresh" on:click=move |_| on_refresh.run(())>
                    "Refresh"
                </button>
            </div>
            <Show
                when=move || jobs.with(|j| !j.is_empty())
                fallback=|| view! { <p class="stat">"No jobs yet: submit one above."</p> }
            >
                <div class="table-scroll">
                    <table class="jobs" data-testid="runner-jobs">
                        <thead>
                            <tr>
                                <th>"job"</th>
                                <th>"name"</th>
                                <th>"state"</th>
                                <th>"steps"</th>
                                <th>"parameters"</th>
                                <th></th>
                            </tr>
                        </thead>
                        <tbody>
                            <For
                                each=move || jobs.get()
                                key=|j| (j.id, j.state, j.step)
                                children=move |j| {
                                    let id = j.id;
                                    view! {
                                        <tr class:selected=move || selected.get() == Some(id)>
                                            <td>{id}</td>
                                            <td>{j.spec.name.clone()}</td>
                                            <td class=format!("job-state {}", j.state.as_str())>{j.state.as_str()}</td>
                                            <td>{format!("{} / {}", j.step, j.spec.train.max_steps)}</td>
                                            <td>{j.n_params.map(thousands).unwrap_or_default()}</td>
                                            <td>
                                                <button
                                                    type="button"
                                                    data-testid=format!("job-watch-{id}")
                                                    on:click=move |_| selected.set(Some(id))
                                                >
                                                    "Watch"
                                                </button>
                                            </td>
                                        </tr>
                                    }
                                }
                            />
                        </tbody>
                    </table>
                </div>
            </Show>
        </div>
    }
}
