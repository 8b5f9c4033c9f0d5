//! The job form: model size, schedule and corpus; the estimated parameters, FLOPs, memory and
//! time before submitting; the runner's 400 shown on the field it names.

use engine::model::gpt;
use engine::protocol::{CorpusInfo, Job, JobId, JobSpec, Task, TokenizerSpec};
use engine::train::TrainConfig;
use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::RunnerConfig;
use super::api::{Conn, Failure};
use super::estimate::{self, Throughput, bytes, duration, si};
use crate::widgets::thousands;

/// Vocabulary assumed for a character-level corpus no job has used yet (the KJV has 63).
const ASSUMED_CHAR_VOCAB: usize = 80;

/// The spec the form describes and whether its vocabulary is known (not assumed), or the
/// field that is not a number and why.
type FormSpec = Result<(JobSpec, bool), (&'static str, String)>;

/// The form's text fields, parsed when needed so that a half-typed number is no error yet.
#[derive(Clone, Copy)]
struct Fields {
    name: RwSignal<String>,
    n_layer: RwSignal<String>,
    n_head: RwSignal<String>,
    n_embd: RwSignal<String>,
    block_size: RwSignal<String>,
    max_steps: RwSignal<String>,
    batch_size: RwSignal<String>,
    learning_rate: RwSignal<String>,
    corpus: RwSignal<String>,
    bpe: RwSignal<bool>,
    bpe_vocab: RwSignal<String>,
}

impl Fields {
    fn new(c: &RunnerConfig) -> Self {
        Self {
            name: RwSignal::new(String::new()),
            n_layer: RwSignal::new(c.model.n_layer.to_string()),
            n_head: RwSignal::new(c.model.n_head.to_string()),
            n_embd: RwSignal::new(c.model.n_embd.to_string()),
            block_size: RwSignal::new(c.model.block_size.to_string()),
            max_steps: RwSignal::new(c.train.max_steps.to_string()),
            batch_size: RwSignal::new(c.train.batch_size.to_string()),
            learning_rate: RwSignal::new(c.train.learning_rate.to_string()),
            corpus: RwSignal::new(c.corpus.clone()),
            bpe: RwSignal::new(false),
            bpe_vocab: RwSignal::new("512".into()),
        }
    }

    /// The spec the form describes; `Err` names the field that is not a number.
    fn spec(&self, char_vocab: usize) -> Result<JobSpec, (&'static str, String)> {
        fn whole(
            field: &'static str,
            s: RwSignal<String>,
        ) -> Result<usize, (&'static str, String)> {
            let text = s.get();
            text.trim()
                .parse()
                .map_err(|_| (field, format!("'{text}' is not a whole number")))
        }
        let learning_rate: f64 = {
            let text = self.learning_rate.get();
            text.trim().parse().map_err(|_| {
                (
                    "train.learning_rate",
                    format!("'{text}' is not a number; write e.g. 3e-3"),
                )
            })?
        };
        let max_steps = whole("train.max_steps", self.max_steps)?;
        let tokenizer = if self.bpe.get() {
            TokenizerSpec::Bpe {
                vocab_size: whole("task.tokenizer.vocab_size", self.bpe_vocab)?,
            }
        } else {
            TokenizerSpec::Char
        };
        let vocab_size = match tokenizer {
            TokenizerSpec::Bpe { vocab_size } => vocab_size,
            TokenizerSpec::Char => char_vocab,
        };
        Ok(JobSpec {
            name: self.name.get().trim().to_string(),
            task: Task::Pretrain {
                // Through serde, so that the config's other knobs (positions, norm, FFN)
                // take their GPT-2 defaults whatever they are.
                model: serde_json::from_value::<gpt::Config>(serde_json::json!({
                    // The runner sets it from the tokenizer at submit; here it is the
                    // estimate's.
                    "vocab_size": vocab_size,
                    "block_size": whole("task.model.block_size", self.block_size)?,
                    "n_layer": whole("task.model.n_layer", self.n_layer)?,
                    "n_head": whole("task.model.n_head", self.n_head)?,
                    "n_embd": whole("task.model.n_embd", self.n_embd)?,
                }))
                .expect("a GPT config from whole numbers"),
                tokenizer,
            },
            train: TrainConfig {
                batch_size: whole("train.batch_size", self.batch_size)?,
                max_steps,
                learning_rate,
                // nanoGPT's habits: decay to a tenth, warm up over the first 5 %.
                min_lr: learning_rate / 10.0,
                warmup_steps: (max_steps / 20).max(1),
                eval_interval: (max_steps / 10).max(1),
                ..TrainConfig::default()
            },
            corpus: self.corpus.get(),
            val_fraction: 0.1,
            // Five checkpoints over the run, so a long job can be sampled while it trains.
            checkpoint_interval: (max_steps / 5).clamp(1, 500),
        })
    }
}

#[component]
pub fn JobForm(
    conn: StoredValue<Conn>,
    config: RunnerConfig,
    jobs: RwSignal<Vec<Job>>,
    corpora: RwSignal<Vec<CorpusInfo>>,
    throughput: Signal<Throughput>,
    selected: RwSignal<Option<JobId>>,
) -> impl IntoView {
    let f = Fields::new(&config);
    let error = RwSignal::new(None::<Failure>);
    let submitting = RwSignal::new(false);
    // Character vocabularies of corpora uploaded from this tab, counted here.
    let uploaded_vocab = RwSignal::new(Vec::<(String, usize)>::new());

    let char_vocab = move || {
        let corpus = f.corpus.get();
        jobs.with(|j| estimate::known_char_vocab(j, &corpus))
            .or_else(|| {
                uploaded_vocab.with(|u| u.iter().find(|(n, _)| *n == corpus).map(|(_, v)| *v))
            })
    };
    let spec = Memo::new(move |_| -> FormSpec {
        let (vocab, known) = match char_vocab() {
            Some(v) => (v, true),
            None => (ASSUMED_CHAR_VOCAB, false),
        };
        f.spec(vocab).map(|s| (s, known || f.bpe.get()))
    });

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let spec = match spec.get_untracked() {
            Ok((spec, _)) => spec,
            Err((field, message)) => {
                error.set(Some(Failure {
                    status: 0,
                    message,
                    field: Some(field.into()),
                }));
                return;
            }
        };
        let mut spec = spec;
        if let Task::Pretrain { model, .. } = &mut spec.task {
            // Let the runner fix the vocabulary from the tokenizer.
            model.vocab_size = 0;
        }
        submitting.set(true);
        error.set(None);
        let conn = conn.get_value();
        wasm_bindgen_futures::spawn_local(async move {
            match conn.submit(&spec).await {
                Ok(job) => {
                    let id = job.id;
                    jobs.update(|j| j.insert(0, job));
                    selected.set(Some(id));
                }
                Err(e) => error.set(Some(e)),
            }
            submitting.set(false);
        });
    };

    let invalid = move |field: &'static str| {
        move || {
            error.with(|e| {
                e.as_ref()
                    .and_then(|e| e.field.as_deref())
                    .is_some_and(|f| f == field)
            })
        }
    };
    let num = move |label: &'static str,
                    value: RwSignal<String>,
                    field: &'static str,
                    testid: &'static str| {
        view! {
            <label class="field" class:invalid=invalid(field)>
                <span>{label}</span>
                <input
                    type="text"
                    inputmode="decimal"
                    size="7"
                    data-testid=testid
                    prop:value=move || value.get()
                    on:input=move |ev| value.set(event_target_value(&ev))
                />
            </label>
        }
    };

    view! {
        <form class="runner-form" data-testid="runner-form" on:submit=submit>
            <fieldset>
                <legend>"Model"</legend>
                {num("layers", f.n_layer, "task.model.n_layer", "runner-n-layer")}
                {num("heads", f.n_head, "task.model.n_head", "runner-n-head")}
                {num("width n_embd", f.n_embd, "task.model.n_embd", "runner-n-embd")}
                {num("context", f.block_size, "task.model.block_size", "runner-block-size")}
            </fieldset>
            <fieldset>
                <legend>"Training"</legend>
                {num("steps", f.max_steps, "train.max_steps", "runner-max-steps")}
                {num("batch", f.batch_size, "train.batch_size", "runner-batch-size")}
                {num("learning rate", f.learning_rate, "train.learning_rate", "runner-lr")}
            </fieldset>
            <fieldset>
                <legend>"Data"</legend>
                <label class="field" class:invalid=invalid("corpus")>
                    <span>"corpus"</span>
                    <select
                        data-testid="runner-corpus"
                        prop:value=move || f.corpus.get()
                        on:change=move |ev| f.corpus.set(event_target_value(&ev))
                    >
                        <For
                            each=move || corpora.get()
                            key=|c| c.name.clone()
                            children=move |c| {
                                let label = format!(
                                    "{} ({} bytes{})",
                                    c.name,
                                    thousands(c.bytes as usize),
                                    if c.builtin { ", shipped" } else { "" }
                                );
                                view! { <option value=c.name.clone()>{label}</option> }
                            }
                        />
                    </select>
                </label>
                <label class="field">
                    <span>"tokenizer"</span>
                    <select
                        data-testid="runner-tokenizer"
                        on:change=move |ev| f.bpe.set(event_target_value(&ev) == "bpe")
                    >
                        <option value="char" selected=move || !f.bpe.get()>"characters"</option>
                        <option value="bpe" selected=move || f.bpe.get()>"byte-level BPE"</option>
                    </select>
                </label>
                <Show when=move || f.bpe.get()>
                    {num("BPE vocabulary", f.bpe_vocab, "task.tokenizer.vocab_size", "runner-bpe-vocab")}
                </Show>
                <Upload conn=conn corpora=corpora corpus=f.corpus uploaded_vocab=uploaded_vocab />
            </fieldset>
            <label class="field wide">
                <span>"name (optional)"</span>
                <input
                    type="text"
                    data-testid="runner-name"
                    prop:value=move || f.name.get()
                    on:input=move |ev| f.name.set(event_target_value(&ev))
                />
            </label>
            <EstimatePanel spec=spec throughput=throughput />
            <div class="controls">
                <button
                    type="submit"
                    class="primary"
                    data-testid="runner-submit"
                    disabled=move || submitting.get()
                >
                    {move || if submitting.get() { "Submitting…" } else { "Submit to the runner" }}
                </button>
            </div>
            <Show when=move || error.with(Option::is_some)>
                <p class="problem" role="alert" data-testid="runner-form-error">
                    {move || {
                        error
                            .get()
                            .map(|e| match e.field {
                                Some(field) => format!("The runner refused the job: {field}: {}", e.message),
                                None => format!("The runner refused the job: {}", e.message),
                            })
                    }}
                </p>
            </Show>
        </form>
    }
}

#[component]
fn EstimatePanel(spec: Memo<FormSpec>, throughput: Signal<Throughput>) -> impl IntoView {
    let body = move || match spec.get() {
        Err((field, message)) => view! {
            <p class="stat">{format!("No estimate yet: {field}: {message}.")}</p>
        }
        .into_any(),
        Ok((spec, vocab_known)) => {
            let Task::Pretrain { model, .. } = &spec.task else {
                return ().into_any();
            };
            let tp = throughput.get();
            let e = estimate::estimate(model, &spec.train, &tp);
            let vocab_note = if vocab_known {
                format!("vocabulary {}", model.vocab_size)
            } else {
                format!(
                    "vocabulary assumed {} characters (the runner counts them at submit)",
                    model.vocab_size
                )
            };
            let basis = match &tp {
                Throughput::Measured {
                    job,
                    flops_per_sec,
                    tokens_per_sec,
                    n_params,
                } => format!(
                    "at {}FLOP/s, measured on this runner by job {job} ({} tokens/s × 6 × {} parameters)",
                    si(*flops_per_sec),
                    thousands(*tokens_per_sec as usize),
                    thousands(*n_params)
                ),
                Throughput::Assumed {
                    flops_per_sec,
                    device,
                } => format!(
                    "assuming {}FLOP/s sustained on {device}: no job on this runner has measured it yet; the first one will",
                    si(*flops_per_sec)
                ),
            };
            view! {
                <dl class="estimate" data-testid="runner-estimate">
                    <div><dt>"parameters N"</dt><dd data-testid="estimate-params">{thousands(e.n_params)}</dd></div>
                    <div>
                        <dt>"tokens D"</dt>
                        <dd>{format!("{} ({} a step)", si(e.tokens).trim_end(), thousands(spec.train.tokens_per_step(model.block_size)))}</dd>
                    </div>
                    <div><dt>"FLOPs ≈ 6·N·D"</dt><dd data-testid="estimate-flops">{format!("{}FLOP", si(e.flops))}</dd></div>
                    <div><dt>"weights + grads + AdamW"</dt><dd>{bytes(e.train_bytes)}</dd></div>
                    <div><dt>"tokens/s"</dt><dd data-testid="estimate-tps">{thousands(e.tokens_per_sec as usize)}</dd></div>
                    <div><dt>"time"</dt><dd data-testid="estimate-time">{duration(e.seconds)}</dd></div>
                </dl>
                <p class="stat" data-testid="estimate-basis">{format!("{vocab_note}; time {basis}.")}</p>
            }
            .into_any()
        }
    };
    view! { <div class="estimate-panel">{body}</div> }
}

/// Uploads a text file as a corpus (`PUT /api/corpora/{name}`) and selects it.
#[component]
fn Upload(
    conn: StoredValue<Conn>,
    corpora: RwSignal<Vec<CorpusInfo>>,
    corpus: RwSignal<String>,
    uploaded_vocab: RwSignal<Vec<(String, usize)>>,
) -> impl IntoView {
    let status = RwSignal::new(String::new());
    let on_file = move |ev: leptos::ev::Event| {
        let Some(input) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        else {
            return;
        };
        let Some(file) = input.files().and_then(|f| f.get(0)) else {
            return;
        };
        // A corpus name is letters, digits, '-' and '_': the file's name, cleaned.
        let stem = file.name();
        let stem = stem.rsplit_once('.').map_or(stem.as_str(), |(s, _)| s);
        let name: String = stem
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect::<String>()
            .trim_start_matches('-')
            .to_string();
        let conn = conn.get_value();
        status.set(format!("uploading {}…", file.name()));
        wasm_bindgen_futures::spawn_local(async move {
            let text = wasm_bindgen_futures::JsFuture::from(file.text())
                .await
                .ok()
                .and_then(|t| t.as_string());
            let Some(text) = text else {
                status.set("cannot read that file as text".into());
                return;
            };
            let mut chars: Vec<char> = text.chars().collect();
            chars.sort_unstable();
            chars.dedup();
            match conn.upload_corpus(&name, text).await {
                Ok(info) => {
                    status.set(format!(
                        "uploaded as '{}' ({} bytes, {} distinct characters)",
                        info.name,
                        thousands(info.bytes as usize),
                        chars.len()
                    ));
                    uploaded_vocab.update(|u| u.push((info.name.clone(), chars.len())));
                    if let Ok(list) = conn.corpora().await {
                        corpora.set(list);
                    }
                    corpus.set(info.name);
                }
                Err(e) => status.set(format!("upload refused: {e}")),
            }
        });
    };
    view! {
        <label class="field">
            <span>"or upload a .txt"</span>
            <input type="file" accept=".txt,text/plain" data-testid="runner-upload" on:change=on_file />
        </label>
        <span class="stat" data-testid="runner-upload-status">{move || status.get()}</span>
    }
}
