//! The engine worker: runs `engine` (training, sampling, tokenizers) off the page's thread.
//! trunk builds it with wasm-bindgen's no-modules target and a loader shim
//! (`/engine-worker_loader.js`). Messages are `frontend::worker::{Request, Event}` as JSON.
//!
//! Training runs in slices of about 100 ms between which the worker yields to its event loop,
//! so Pause, Resume and Stop are handled within a slice.

use std::cell::RefCell;
use std::rc::Rc;

use candle_core::Device;
use engine::bench::BenchConfig;
use engine::checkpoint::Checkpoint;
use engine::data::Dataset;
use engine::model::gpt::{self, Gpt};
use engine::sample::{Generator, SamplingConfig};
use engine::tokenizer::{BpeTokenizer, CharTokenizer, Tokenizer};
use engine::train::{TrainConfig, Trainer};
use frontend::worker::protocol::{Candidate, ComputeDevice, Piece, TokenizerChoice, TrainSpec};
use frontend::worker::{Event, Request};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

#[path = "engine_worker/architectures.rs"]
mod architectures;
#[path = "engine_worker/compare.rs"]
mod compare;
#[path = "engine_worker/device.rs"]
mod device;
#[path = "engine_worker/quant.rs"]
mod quant;

/// Time the training loop runs before yielding to messages.
const SLICE_MS: f64 = 100.0;
const VAL_FRACTION: f32 = 0.1;
/// The first megabyte of the corpus is plenty for a model trained in a tab.
const TRAIN_CORPUS_BYTES: usize = 1_000_000;

#[derive(Default)]
struct State {
    run: u32,
    trainer: Option<Trainer>,
    paused: bool,
    /// Bumped by Stop and by a new run: a training loop whose generation is stale ends.
    generation: u32,
    shipped_model: Option<(String, Rc<Gpt>, Tokenizer)>,
    trained_bpe: Option<Tokenizer>,
    shipped_bpe: Option<Tokenizer>,
    /// Stops a generation in progress when a new one starts.
    generating: u32,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn post(event: &Event) {
    let text = serde_json::to_string(event).expect("events serialize");
    let _ = scope().post_message(&JsValue::from_str(&text));
}

fn error(what: &str, message: impl ToString) {
    post(&Event::Error {
        what: what.into(),
        message: message.to_string(),
    });
}

fn now() -> f64 {
    scope().performance().map_or(0.0, |p| p.now())
}

/// Lets the event loop run (messages are handled) before continuing.
async fn yield_now() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let _ = scope().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0);
    });
    let _ = JsFuture::from(promise).await;
}

async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    let resp = JsFuture::from(scope().fetch_with_str(url))
        .await
        .map_err(|e| format!("cannot fetch {url}: {e:?}"))?;
    let resp: web_sys::Response = resp.unchecked_into();
    if !resp.ok() {
        return Err(format!("{url}: HTTP {}", resp.status()));
    }
    let buf = JsFuture::from(resp.array_buffer().map_err(|e| format!("{e:?}"))?)
        .await
        .map_err(|e| format!("cannot read {url}: {e:?}"))?;
    Ok(js_sys::Uint8Array::new(&buf).to_vec())
}

/// The longest prefix of `text` of at most `bytes` bytes that ends on a character boundary.
fn prefix(text: &str, bytes: usize) -> &str {
    let mut end = bytes.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

async fn fetch_text(url: &str) -> Result<String, String> {
    let bytes = fetch_bytes(url).await?;
    String::from_utf8(bytes).map_err(|_| format!("{url} is not UTF-8 text"))
}

fn main() {
    console_error_panic_hook::set_once();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(|ev: MessageEvent| {
        let Some(text) = ev.data().as_string() else {
            return;
        };
        match serde_json::from_str::<Request>(&text) {
            Ok(request) => handle(request),
            Err(e) => error("worker", format!("unreadable request: {e}")),
        }
    });
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    post(&Event::Ready);
}

fn handle(request: Request) {
    match request {
        Request::StartTraining { run, spec } => {
            let generation = STATE.with(|s| {
                let mut s = s.borrow_mut();
                s.generation += 1;
                s.run = run;
                s.trainer = None;
                s.paused = false;
                s.generation
            });
            wasm_bindgen_futures::spawn_local(async move {
                if let Err(e) = train(run, spec, generation).await {
                    error("training", e);
                }
            });
        }
        Request::Pause => STATE.with(|s| {
            let mut s = s.borrow_mut();
            if s.trainer.is_some() && !s.paused {
                s.paused = true;
                post(&Event::Paused { run: s.run });
            }
        }),
        Request::Resume => STATE.with(|s| {
            let mut s = s.borrow_mut();
            if s.paused {
                s.paused = false;
                post(&Event::Resumed { run: s.run });
            }
        }),
        Request::Stop => STATE.with(|s| {
            let mut s = s.borrow_mut();
            s.generation += 1;
            s.paused = false;
        }),
        Request::CompareVariants { run, spec } => {
            // A new run ends whatever trained before (the same generation counter as D1's).
            let generation = STATE.with(|s| {
                let mut s = s.borrow_mut();
                s.generation += 1;
                s.paused = false;
                s.generation
            });
            wasm_bindgen_futures::spawn_local(async move {
                if let Err(e) = compare::run(run, spec, generation).await {
                    error("compare", e);
                }
            });
        }
        Request::LoadModel { url } => wasm_bindgen_futures::spawn_local(async move {
            if let Err(e) = load_model(&url).await {
                error(&format!("load {url}"), e);
            }
        }),
        Request::Generate {
            trained,
            prompt,
            max_new_tokens,
            temperature,
            seed,
        } => wasm_bindgen_futures::spawn_local(async move {
            let config = SamplingConfig {
                temperature,
                seed,
                ..SamplingConfig::default()
            };
            if let Err(e) = generate(trained, &prompt, max_new_tokens, config).await {
                error("generate", e);
            }
        }),
        Request::TrainBpe {
            corpus_url,
            corpus_bytes,
            vocab_size,
        } => wasm_bindgen_futures::spawn_local(async move {
            if let Err(e) = train_bpe(&corpus_url, corpus_bytes, vocab_size).await {
                error("bpe", e);
            }
        }),
        Request::LoadShippedBpe { url } => wasm_bindgen_futures::spawn_local(async move {
            if let Err(e) = load_shipped_bpe(&url).await {
                error("shipped bpe", e);
            }
        }),
        Request::AttentionMaps { url, text } => wasm_bindgen_futures::spawn_local(async move {
            if let Err(e) = attention_maps(&url, &text).await {
                error("attention", e);
            }
        }),
        Request::Tokenize { text, with } => {
            if let Err(e) = tokenize(&text, with) {
                error("tokenize", e);
            }
        }
        Request::DecodeStep {
            url,
            prompt,
            steps,
            sampling,
        } => {
            if let Err(e) = decode_step(&url, &prompt, steps, sampling) {
                error("decode", e);
            }
        }
        Request::KvBench { n_tokens } => {
            if let Err(e) = kv_bench(n_tokens) {
                error("kv bench", e);
            }
        }
        Request::Bench { config } => {
            if let Err(e) = bench(&config) {
                error("bench", e);
            }
        }
        Request::SetDevice { webgpu } => {
            wasm_bindgen_futures::spawn_local(device::set_device(webgpu));
        }
        Request::GpuBench {
            sizes,
            model,
            tokens,
        } => wasm_bindgen_futures::spawn_local(async move {
            if let Err(e) = device::gpu_bench(&sizes, &model, tokens).await {
                error("gpu bench", e);
            }
        }),
        Request::QuantCompare {
            model,
            corpus,
            group_size,
            sparsities,
            windows,
            prompt,
            sample_tokens,
        } => wasm_bindgen_futures::spawn_local(async move {
            let run = quant::compare(
                &model,
                &corpus,
                group_size,
                &sparsities,
                windows,
                &prompt,
                sample_tokens,
            );
            if let Err(e) = run.await {
                error("quantize", e);
            }
        }),
        Request::FillMask { url, text } => wasm_bindgen_futures::spawn_local(async move {
            if let Err(e) = architectures::fill_mask(&url, &text).await {
                error("fill mask", e);
            }
        }),
        Request::Continue {
            url,
            prompt,
            max_new_tokens,
        } => wasm_bindgen_futures::spawn_local(async move {
            if let Err(e) = architectures::continue_text(&url, &prompt, max_new_tokens).await {
                error("continue", e);
            }
        }),
        Request::Translate { url, number } => wasm_bindgen_futures::spawn_local(async move {
            if let Err(e) = architectures::translate(&url, number).await {
                error("translate", e);
            }
        }),
    }
}

/// The engine's benchmark cases, in one go: the worker is busy until they end (about a
/// minute), which is what a benchmark wants.
fn bench(config: &BenchConfig) -> Result<(), String> {
    let (train, model) = engine::bench::train(config, &Device::Cpu, |done, total| {
        post(&Event::Progress {
            what: "bench: training steps".into(),
            done,
            total,
        })
    })
    .map_err(|e| e.to_string())?;
    post(&Event::BenchFigure { figure: train });
    for use_cache in [true, false] {
        let figure = engine::bench::sample(config, &model, use_cache).map_err(|e| e.to_string())?;
        post(&Event::BenchFigure { figure });
    }
    let inference = engine::bench::InferenceSection::default();
    let mut figures = engine::bench::kv_cache(&config.model, &inference.kv_positions, &Device::Cpu)
        .map_err(|e| e.to_string())?;
    figures
        .extend(engine::bench::int8_matmul(&inference, &Device::Cpu).map_err(|e| e.to_string())?);
    for figure in figures {
        post(&Event::BenchFigure { figure });
    }
    post(&Event::BenchDone);
    Ok(())
}

async fn train(run: u32, spec: TrainSpec, generation: u32) -> Result<(), String> {
    post(&Event::Progress {
        what: "loading the corpus".into(),
        done: 0,
        total: 1,
    });
    let corpus = fetch_text(&spec.corpus_url).await?;
    let corpus = prefix(&corpus, TRAIN_CORPUS_BYTES);
    let tokenizer: Tokenizer = CharTokenizer::from_text(corpus)
        .map_err(|e| e.to_string())?
        .into();
    let data = Dataset::new(corpus, tokenizer.clone(), VAL_FRACTION).map_err(|e| e.to_string())?;
    let train_tokens = data.train.len();
    let model = gpt::Config {
        vocab_size: tokenizer.vocab_size(),
        block_size: spec.block_size,
        n_layer: spec.n_layer,
        n_head: spec.n_head,
        n_embd: spec.n_embd,
        dropout: 0.0,
        bias: true,
        ..Default::default()
    };
    let n_params = model.n_params();
    let train = TrainConfig {
        batch_size: spec.batch_size,
        max_steps: spec.max_steps,
        learning_rate: spec.learning_rate,
        min_lr: spec.learning_rate / 10.0,
        warmup_steps: (spec.max_steps / 20).max(1),
        eval_interval: spec.eval_interval,
        eval_batches: 4,
        ..TrainConfig::default()
    };
    let trainer = Trainer::new(model, train, data, &Device::Cpu).map_err(|e| e.to_string())?;
    let stale = move || STATE.with(|s| s.borrow().generation != generation);
    if stale() {
        return Ok(());
    }
    STATE.with(|s| s.borrow_mut().trainer = Some(trainer));
    post(&Event::TrainingStarted {
        run,
        n_params,
        vocab_size: tokenizer.vocab_size(),
        train_tokens,
    });
    // The untrained model's loss is the first point of the curve (≈ ln vocab).
    with_trainer(|t| evaluate(run, t))?;
    loop {
        yield_now().await;
        if stale() {
            return Ok(());
        }
        if STATE.with(|s| s.borrow().paused) {
            continue_after(50).await;
            continue;
        }
        let t0 = now();
        while now() - t0 < SLICE_MS {
            let done = with_trainer(|t| {
                let m = t.step().map_err(|e| e.to_string())?;
                post(&Event::Step {
                    run,
                    step: m.step,
                    loss: m.loss,
                    lr: m.lr,
                    tokens_per_sec: m.tokens_per_sec,
                });
                if m.step % spec.eval_interval == 0 || t.is_done() {
                    evaluate(run, t)?;
                }
                if m.step % spec.sample_interval == 0 || t.is_done() {
                    let text =
                        sample_text(t.model(), &t.data().tokenizer, "\n", 160, m.step as u64)?;
                    post(&Event::Sample {
                        run,
                        step: m.step,
                        text,
                    });
                }
                Ok(t.is_done())
            })?;
            if done {
                let step = with_trainer(|t| Ok(t.step_count()))?;
                post(&Event::TrainingDone { run, step });
                return Ok(());
            }
        }
    }
}

async fn continue_after(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let _ = scope().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
    });
    let _ = JsFuture::from(promise).await;
}

fn with_trainer<T>(f: impl FnOnce(&mut Trainer) -> Result<T, String>) -> Result<T, String> {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let t = s.trainer.as_mut().ok_or("no training run")?;
        f(t)
    })
}

fn evaluate(run: u32, t: &mut Trainer) -> Result<(), String> {
    let e = t.estimate_loss().map_err(|e| e.to_string())?;
    post(&Event::Eval {
        run,
        step: t.step_count(),
        train: e.train,
        val: e.val,
    });
    Ok(())
}

fn sample_text(
    model: &Gpt,
    tokenizer: &Tokenizer,
    prompt: &str,
    n: usize,
    seed: u64,
) -> Result<String, String> {
    let ids = tokenizer.encode(prompt).map_err(|e| e.to_string())?;
    let config = SamplingConfig {
        temperature: 0.8,
        seed,
        ..SamplingConfig::default()
    };
    let out = engine::sample::generate(model, &ids, n, &config, true).map_err(|e| e.to_string())?;
    tokenizer.decode(&out).map_err(|e| e.to_string())
}

async fn load_checkpoint(url: &str) -> Result<Checkpoint, String> {
    let base = url.trim_end_matches('/');
    let config = fetch_bytes(&format!("{base}/config.json")).await?;
    let weights = fetch_bytes(&format!("{base}/model.safetensors")).await?;
    Checkpoint::from_parts(&config, &weights).map_err(|e| e.to_string())
}

async fn load_model(url: &str) -> Result<(), String> {
    let ckpt = load_checkpoint(url).await?;
    let model = ckpt.to_model(&Device::Cpu).map_err(|e| e.to_string())?;
    post(&Event::ModelLoaded {
        url: url.to_string(),
        n_params: ckpt.meta.model.n_params(),
        vocab_size: ckpt.meta.model.vocab_size,
        step: ckpt.meta.step,
        val_loss: ckpt.meta.val_loss,
    });
    STATE.with(|s| {
        s.borrow_mut().shipped_model = Some((url.to_string(), Rc::new(model), ckpt.meta.tokenizer))
    });
    Ok(())
}

/// The checkpoint at `url` as the worker's loaded model, loading it when another (or none) is.
async fn model_at(url: &str) -> Result<(Rc<Gpt>, Tokenizer), String> {
    let loaded = || {
        STATE.with(|s| {
            s.borrow()
                .shipped_model
                .as_ref()
                .filter(|(u, _, _)| u == url)
                .map(|(_, m, t)| (m.clone(), t.clone()))
        })
    };
    if let Some(loaded) = loaded() {
        return Ok(loaded);
    }
    load_model(url).await?;
    loaded().ok_or_else(|| format!("the model {url} did not load"))
}

/// Attention weights of the shipped model over `text` (clipped to its context), per layer and
/// head. The model is loaded first when it is not the one in memory.
async fn attention_maps(url: &str, text: &str) -> Result<(), String> {
    let (model, tokenizer) = model_at(url).await?;
    if text.is_empty() {
        return Err("type a text to look at".into());
    }
    let mut ids = tokenizer
        .encode(text)
        .map_err(|e| format!("{e}; the model knows only the characters of its training text"))?;
    ids.truncate(model.config().block_size);
    let maps = model
        .attention_maps(&ids)
        .map_err(|e| e.to_string())?
        .iter()
        .map(|m| m.to_vec3::<f32>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let tokens = ids.iter().map(|&id| piece_text(&tokenizer, id)).collect();
    post(&Event::AttentionMaps {
        url: url.to_string(),
        tokens,
        maps,
    });
    Ok(())
}

async fn generate(
    trained: bool,
    prompt: &str,
    max_new_tokens: usize,
    config: SamplingConfig,
) -> Result<(), String> {
    let ticket = STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.generating += 1;
        s.generating
    });
    // The trained model is a snapshot of the run now (it keeps training meanwhile).
    let (model, tokenizer, source) = if trained {
        with_trainer(|t| {
            let ckpt = t.checkpoint();
            let model = ckpt.to_model(&Device::Cpu).map_err(|e| e.to_string())?;
            let tokenizer = ckpt.meta.tokenizer.clone();
            Ok((
                Rc::new(model),
                tokenizer,
                device::Source::Snapshot(Box::new(ckpt)),
            ))
        })?
    } else {
        STATE
            .with(|s| {
                s.borrow()
                    .shipped_model
                    .as_ref()
                    .map(|(url, m, t)| (m.clone(), t.clone(), device::Source::Url(url.clone())))
            })
            .ok_or("the pre-trained model is not loaded")?
    };
    let prompt = if prompt.is_empty() { "\n" } else { prompt };
    let ids = tokenizer
        .encode(prompt)
        .map_err(|e| format!("{e}; the model knows only the characters of its training text"))?;
    let still_wanted = move || STATE.with(|s| s.borrow().generating == ticket);
    let on_gpu = device::generate_on_gpu(
        trained,
        source,
        &tokenizer,
        &ids,
        max_new_tokens,
        config.clone(),
        still_wanted,
    )
    .await?;
    if on_gpu {
        return Ok(());
    }
    let mut generator = Generator::new(&model, &ids, config, true).map_err(|e| e.to_string())?;
    let t0 = now();
    let mut made = 0;
    while made < max_new_tokens {
        let t_slice = now();
        while made < max_new_tokens && now() - t_slice < SLICE_MS {
            generator.next_token().map_err(|e| e.to_string())?;
            made += 1;
        }
        let text = tokenizer
            .decode(generator.tokens())
            .map_err(|e| e.to_string())?;
        let elapsed = (now() - t0) / 1000.0;
        post(&Event::Generated {
            trained,
            text,
            done: made >= max_new_tokens,
            tokens_per_sec: made as f64 / elapsed.max(1e-3),
            device: ComputeDevice::Cpu,
        });
        yield_now().await;
        if STATE.with(|s| s.borrow().generating != ticket) {
            return Ok(());
        }
    }
    Ok(())
}

async fn train_bpe(url: &str, bytes: usize, vocab_size: usize) -> Result<(), String> {
    let corpus = fetch_text(url).await?;
    let text = prefix(&corpus, bytes);
    let mut last = 0.0;
    let bpe = BpeTokenizer::train_with_progress(text, vocab_size, |done, total| {
        // Progress while the worker is busy: the page shows it as it arrives.
        let t = now();
        if t - last > 100.0 || done == total {
            last = t;
            post(&Event::Progress {
                what: "bpe".into(),
                done,
                total,
            });
        }
    })
    .map_err(|e| e.to_string())?;
    let merges = bpe.merges().len();
    let tokenizer: Tokenizer = bpe.into();
    post(&Event::BpeReady {
        shipped: false,
        vocab_size: tokenizer.vocab_size(),
        merges,
    });
    STATE.with(|s| s.borrow_mut().trained_bpe = Some(tokenizer));
    Ok(())
}

/// The shipped BPE: a tokenizer JSON file (`static/models/bpe-kjv.json`, the serde form of
/// `Tokenizer`), or a checkpoint folder whose `config.json` holds one.
async fn load_shipped_bpe(url: &str) -> Result<(), String> {
    let file = if url.ends_with(".json") {
        url.to_string()
    } else {
        format!("{}/config.json", url.trim_end_matches('/'))
    };
    let bytes = fetch_bytes(&file).await?;
    #[derive(serde::Deserialize)]
    struct Meta {
        tokenizer: Tokenizer,
    }
    let tokenizer = serde_json::from_slice::<Tokenizer>(&bytes)
        .or_else(|_| serde_json::from_slice::<Meta>(&bytes).map(|m| m.tokenizer))
        .map_err(|e| format!("{file} holds no tokenizer: {e}"))?;
    let merges = match &tokenizer {
        Tokenizer::Bpe(b) => b.merges().len(),
        Tokenizer::Char(_) => 0,
    };
    post(&Event::BpeReady {
        shipped: true,
        vocab_size: tokenizer.vocab_size(),
        merges,
    });
    STATE.with(|s| s.borrow_mut().shipped_bpe = Some(tokenizer));
    Ok(())
}

fn tokenize(text: &str, with: TokenizerChoice) -> Result<(), String> {
    let tokenizer = match with {
        TokenizerChoice::Char => {
            if text.is_empty() {
                post(&Event::Tokens {
                    with,
                    pieces: Vec::new(),
                });
                return Ok(());
            }
            CharTokenizer::from_text(text)
                .map_err(|e| e.to_string())?
                .into()
        }
        TokenizerChoice::Trained => STATE
            .with(|s| s.borrow().trained_bpe.clone())
            .ok_or("train our BPE first")?,
        TokenizerChoice::Shipped => STATE
            .with(|s| s.borrow().shipped_bpe.clone())
            .ok_or("the shipped BPE is not loaded")?,
    };
    let ids = tokenizer.encode(text).map_err(|e| e.to_string())?;
    let pieces = ids
        .iter()
        .map(|&id| Piece {
            id,
            text: piece_text(&tokenizer, id),
        })
        .collect();
    post(&Event::Tokens { with, pieces });
    Ok(())
}

/// A token's text; bytes that are only part of a character are shown as `\xNN`.
fn piece_text(tokenizer: &Tokenizer, id: u32) -> String {
    match tokenizer {
        Tokenizer::Bpe(b) => match b.token_bytes(id) {
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(s) => s.to_string(),
                Err(_) => bytes.iter().map(|b| format!("\\x{b:02x}")).collect(),
            },
            None => format!("<{id}>"),
        },
        Tokenizer::Char(_) => tokenizer.decode(&[id]).unwrap_or_default(),
    }
}

/// Most steps the decoding playground replays (each request reruns them from the prompt).
const MAX_DECODE_STEPS: usize = 2000;
/// Bars in the playground's chart.
const DECODE_CANDIDATES: usize = 24;

/// The decoding playground's step: replays `steps` tokens with the seeded `Generator` (so
/// stepping one at a time and jumping ahead give the same text), then draws one more and
/// reports the distribution it came from.
fn decode_step(
    url: &str,
    prompt: &str,
    steps: usize,
    sampling: SamplingConfig,
) -> Result<(), String> {
    if steps > MAX_DECODE_STEPS {
        return Err(format!(
            "{steps} steps is more than the playground replays ({MAX_DECODE_STEPS}); reset it"
        ));
    }
    let (model, tokenizer) = STATE
        .with(|s| {
            s.borrow()
                .shipped_model
                .as_ref()
                .filter(|(u, _, _)| u == url)
                .map(|(_, m, t)| (m.clone(), t.clone()))
        })
        .ok_or_else(|| format!("the model {url} is not loaded yet"))?;
    let prompt = if prompt.is_empty() { "\n" } else { prompt };
    let ids = tokenizer
        .encode(prompt)
        .map_err(|e| format!("{e}; the model knows only the characters of its training text"))?;
    let mut generator =
        Generator::new(&model, &ids, sampling.clone(), true).map_err(|e| e.to_string())?;
    for _ in 0..steps {
        generator.next_token().map_err(|e| e.to_string())?;
    }
    let text = tokenizer
        .decode(generator.tokens())
        .map_err(|e| e.to_string())?;
    let next = generator.next_token().map_err(|e| e.to_string())?;
    // The whole distribution before the cuts; greedy shows the plain softmax (T = 1).
    let shown = SamplingConfig {
        temperature: if sampling.temperature == 0.0 {
            1.0
        } else {
            sampling.temperature
        },
        top_k: None,
        top_p: None,
        ..sampling.clone()
    };
    let probs = engine::sample::distribution(generator.last_logits(), &shown);
    let kept = generator.last_distribution();
    let candidate = |id: usize| Candidate {
        id: id as u32,
        text: tokenizer.decode(&[id as u32]).unwrap_or_default(),
        prob: probs[id],
        kept: kept[id],
    };
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    let vocab = probs.len();
    let top_k_cut = sampling.top_k.filter(|&k| k < vocab);
    let top_p_cut = sampling
        .top_p
        .map(|_| kept.iter().filter(|&&p| p > 0.0).count());
    post(&Event::Decoded {
        steps,
        text,
        candidates: order
            .iter()
            .take(DECODE_CANDIDATES)
            .map(|&i| candidate(i))
            .collect(),
        top_k_cut,
        top_p_cut,
        next: candidate(next as usize),
    });
    Ok(())
}

/// Longest run of the KV-cache benchmark (the uncached run grows quadratically).
const MAX_KV_BENCH_TOKENS: usize = 1024;

/// `engine::bench::kv_profile` both ways on the shipped model's shape (2 layers, 4 heads, 64
/// wide, 63 characters) with random weights: timing does not depend on the weights, and the
/// shipped model's context of 64 is too short to show the growth.
fn kv_bench(n_tokens: usize) -> Result<(), String> {
    if n_tokens == 0 || n_tokens > MAX_KV_BENCH_TOKENS {
        return Err(format!(
            "{n_tokens} tokens is outside 1..={MAX_KV_BENCH_TOKENS}"
        ));
    }
    let cfg = gpt::Config {
        vocab_size: 63,
        block_size: n_tokens + 1,
        n_layer: 2,
        n_head: 4,
        n_embd: 64,
        ..gpt::Config::default()
    };
    let model = engine::bench::random_model(&cfg, 1337, &Device::Cpu).map_err(|e| e.to_string())?;
    let profile =
        |cached| engine::bench::kv_profile(&model, n_tokens, cached).map_err(|e| e.to_string());
    post(&Event::KvProfile {
        cached: profile(true)?,
        uncached: profile(false)?,
    });
    Ok(())
}
