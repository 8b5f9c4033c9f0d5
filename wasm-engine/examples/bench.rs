//! Engine side of `cargo xtask bench`: training and sampling tokens/s of the model in
//! `bench/config.json`, on candle's CPU backend (or CUDA when built with `--features cuda`
//! and a GPU is present).
//!
//!     cargo run --release -p engine --example bench -- --out target/bench/engine.json
//!
//! The PyTorch peer (`bench/nanogpt_cpu.py`) reads the same file and trains on random tokens
//! of the same vocabulary, so the data here is random text over that many characters.

use std::path::PathBuf;

use anyhow::{Context, Result};
use engine::data::Dataset;
use engine::model::gpt;
use engine::sample::{SamplingConfig, generate};
use engine::tokenizer::{CharTokenizer, Tokenizer};
use engine::train::{TrainConfig, Trainer};
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::json;
use web_time::Instant;

#[derive(Deserialize)]
struct BenchConfig {
    model: gpt::Config,
    train: TrainSection,
    sample: SampleSection,
}

#[derive(Deserialize)]
struct TrainSection {
    seed: u64,
    batch_size: usize,
    warmup_steps: usize,
    timed_steps: usize,
    learning_rate: f64,
    weight_decay: f64,
    beta1: f64,
    beta2: f64,
    grad_clip: f64,
}

#[derive(Deserialize)]
struct SampleSection {
    seed: u64,
    prompt: Vec<u32>,
    max_new_tokens: usize,
    temperature: f32,
    warmup_runs: usize,
    timed_runs: usize,
}

/// Seeded random text over exactly `vocab_size` distinct characters.
fn random_corpus(vocab_size: usize, len: usize, seed: u64) -> String {
    let alphabet: Vec<char> = (0..vocab_size as u32)
        .map(|i| char::from_u32(0x21 + i).expect("printable ASCII and Latin-1 range"))
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut text: String = alphabet.iter().collect(); // every character at least once
    text.extend((0..len).map(|_| alphabet[rng.random_range(0..vocab_size)]));
    text
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench/engine.json"));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let config: BenchConfig = serde_json::from_slice(
        &std::fs::read(root.join("bench/config.json")).context("reading bench/config.json")?,
    )?;
    let device = engine::device::best();
    println!("engine bench on {device:?}");

    // Training tokens/s.
    let m = &config.model;
    let text = random_corpus(m.vocab_size, 400_000, config.train.seed);
    let tokenizer = Tokenizer::from(CharTokenizer::from_text(&text)?);
    let data = Dataset::new(&text, tokenizer, 0.1)?;
    let t = &config.train;
    let train = TrainConfig {
        seed: t.seed,
        batch_size: t.batch_size,
        max_steps: t.warmup_steps + t.timed_steps,
        learning_rate: t.learning_rate,
        weight_decay: t.weight_decay,
        beta1: t.beta1,
        beta2: t.beta2,
        grad_clip: t.grad_clip,
        warmup_steps: 0,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(m.clone(), train.clone(), data, &device)?;
    for _ in 0..t.warmup_steps {
        trainer.step()?;
    }
    let start = Instant::now();
    for _ in 0..t.timed_steps {
        trainer.step()?;
    }
    let train_tps = (t.timed_steps * train.tokens_per_step(m.block_size)) as f64
        / start.elapsed().as_secs_f64();
    println!("train: {train_tps:.0} tokens/s");

    // Sampling tokens/s, with and without the KV cache.
    let model = trainer.checkpoint().to_model(&device)?;
    let s = &config.sample;
    let sampling = SamplingConfig {
        temperature: s.temperature,
        seed: s.seed,
        ..SamplingConfig::default()
    };
    let mut figures = vec![json!({"name": "train", "value": train_tps, "unit": "tokens/s"})];
    for (name, use_cache) in [("sample_kv_cache", true), ("sample_no_kv_cache", false)] {
        for _ in 0..s.warmup_runs {
            generate(&model, &s.prompt, s.max_new_tokens, &sampling, use_cache)?;
        }
        let start = Instant::now();
        for _ in 0..s.timed_runs {
            generate(&model, &s.prompt, s.max_new_tokens, &sampling, use_cache)?;
        }
        let tps = (s.timed_runs * s.max_new_tokens) as f64 / start.elapsed().as_secs_f64();
        println!("{name}: {tps:.0} tokens/s");
        figures.push(json!({"name": name, "value": tps, "unit": "tokens/s"}));
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_vec_pretty(&figures)?)?;
    println!("wrote {}", out.display());
    Ok(())
}
