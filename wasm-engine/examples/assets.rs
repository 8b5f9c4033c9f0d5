//! `cargo xtask assets`: trains, deterministically, the small models and tokenizers the site
//! ships under `static/models/`.
//!
//!     cargo run --release -p engine --example assets [-- --out static/models]
//!
//! - `char-kjv/`: a character-level GPT on the King James Bible (the D1 lesson samples from it);
//! - `bpe-kjv.json`: our byte-level BPE with 1024 tokens trained on the same text (B2).
//!
//! Seeds are fixed, so the same machine writes the same bytes every time.

use std::path::PathBuf;

use anyhow::{Context, Result};
use engine::data::Dataset;
use engine::model::gpt;
use engine::sample::{SamplingConfig, generate};
use engine::tokenizer::{BpeTokenizer, CharTokenizer, Tokenizer};
use engine::train::{TrainConfig, Trainer};
use web_time::Instant;

/// The D1 model: small enough to train on a 2-core machine in minutes and to run in a
/// browser tab (about 110k parameters, 0.4 MB).
fn char_model(vocab_size: usize) -> gpt::Config {
    gpt::Config {
        vocab_size,
        block_size: 64,
        n_layer: 2,
        n_head: 4,
        n_embd: 64,
        dropout: 0.0,
        bias: true,
        ..Default::default()
    }
}

fn char_training() -> TrainConfig {
    TrainConfig {
        seed: 1337,
        batch_size: 16,
        max_steps: 700,
        learning_rate: 3e-3,
        min_lr: 3e-4,
        warmup_steps: 50,
        eval_interval: 100,
        eval_batches: 20,
        ..TrainConfig::default()
    }
}

const BPE_VOCAB: usize = 1024;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("static/models"));
    let text = std::fs::read_to_string(root.join("static/data/kjv.txt"))
        .context("reading static/data/kjv.txt")?;
    std::fs::create_dir_all(&out)?;

    // 1) Our BPE on the training split (the first 90%, as the datasets use).
    let start = Instant::now();
    let train_text = &text[..text.floor_char_boundary(text.len() * 9 / 10)];
    let bpe = BpeTokenizer::train(train_text, BPE_VOCAB)?;
    let bpe_path = out.join("bpe-kjv.json");
    std::fs::write(&bpe_path, serde_json::to_vec(&Tokenizer::from(bpe))?)?;
    println!(
        "wrote {} ({BPE_VOCAB} tokens) in {:.1}s",
        bpe_path.display(),
        start.elapsed().as_secs_f64()
    );

    // 2) The character-level GPT.
    let device = engine::device::best();
    let tokenizer = Tokenizer::from(CharTokenizer::from_text(&text)?);
    let data = Dataset::new(&text, tokenizer, 0.1)?;
    let model = char_model(data.tokenizer.vocab_size());
    println!(
        "char-kjv: {} parameters on {}",
        model.n_params(),
        engine::device::name(&device)
    );
    let mut trainer = Trainer::new(model, char_training(), data, &device)?;
    let start = Instant::now();
    while !trainer.is_done() {
        let m = trainer.step()?;
        if trainer.should_eval() {
            let eval = trainer.estimate_loss()?;
            println!(
                "step {:>5}  train {:.3}  val {:.3}  lr {:.2e}  {:.0} tokens/s  {:.0}s",
                m.step,
                eval.train,
                eval.val,
                m.lr,
                m.tokens_per_sec,
                start.elapsed().as_secs_f64()
            );
        }
    }
    let checkpoint = trainer.checkpoint();
    let dir = out.join("char-kjv");
    checkpoint.save(&dir)?;
    let model = checkpoint.to_model(&device)?;
    let tokenizer = &checkpoint.meta.tokenizer;
    let prompt = tokenizer.encode("And God said")?;
    let sample = generate(
        &model,
        &prompt,
        200,
        &SamplingConfig {
            temperature: 0.8,
            ..SamplingConfig::default()
        },
        true,
    )?;
    println!(
        "wrote {}; a sample:\nAnd God said{}",
        dir.display(),
        tokenizer.decode(&sample)?
    );
    Ok(())
}
