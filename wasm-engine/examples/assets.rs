//! `cargo xtask assets`: trains, deterministically, the small models and tokenizers the site
//! ships under `static/models/`.
//!
//!     cargo run --release -p engine --example assets [-- --out static/models]
//!
//! - `char-kjv/`: a character-level GPT on the King James Bible (the D1 lesson samples from it);
//! - `bpe-kjv.json`: our byte-level BPE with 1024 tokens trained on the same text (B2);
//! - `bert-kjv/`: a character-level BERT, masked-LM on the same text (C4);
//! - `t5-numbers/`: a character-level T5 that turns numbers in words into digits (C4).
//!
//! `-- --only bert,t5` trains only the named ones (`bpe`, `gpt`, `bert`, `t5`).
//!
//! Seeds are fixed, so the same machine writes the same bytes every time.

use std::path::PathBuf;

use anyhow::{Context, Result};
use engine::checkpoint::{ArchCheckpoint, ArchMeta};
use engine::data::{Dataset, Split, numbers, step_rng};
use engine::model::{bert, gpt, t5};
use engine::sample::{SamplingConfig, generate};
use engine::tokenizer::{BpeTokenizer, CharTokenizer, Tokenizer};
use engine::train::stepper::{MicroLoss, Stepper};
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
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|list| list.split(',').map(str::to_string).collect());
    let wanted = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|n| n == name));
    let device = engine::device::best();
    if wanted("t5") {
        train_t5(&out, &device)?;
    }
    if wanted("bert") {
        train_bert(&text, &out, &device)?;
    }
    if !wanted("bpe") && !wanted("gpt") {
        return Ok(());
    }

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

/// The C4 BERT: the shipped GPT's shape (2 layers, width 64) on the same characters plus
/// `[MASK]` (about 120k parameters, 0.5 MB), so lesson C4 compares like with like.
fn bert_model(n_chars: usize) -> bert::Config {
    bert::Config {
        vocab_size: n_chars + 1,
        block_size: 64,
        n_layer: 2,
        n_head: 4,
        n_embd: 64,
    }
}

fn bert_training() -> TrainConfig {
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

/// MLM accuracy on `eval_batches` fixed, seeded validation batches (the same every time).
fn mlm_accuracy(
    model: &bert::Bert,
    data: &Dataset,
    train: &TrainConfig,
    block_size: usize,
) -> Result<(f32, f32)> {
    let mut rng = step_rng(train.seed, 0, 2);
    let (mut loss, mut acc) = (0f32, 0f32);
    for _ in 0..train.eval_batches {
        let (x, _) = data.batch(Split::Val, train.batch_size, block_size, &mut rng)?;
        let batch = bert::mask_tokens(
            &x,
            train.batch_size,
            block_size,
            model.config().mask_id(),
            &mut rng,
        );
        let (l, a) = model.mlm_loss(&batch)?;
        loss += l.to_scalar::<f32>()?;
        acc += a;
    }
    let n = train.eval_batches as f32;
    Ok((loss / n, acc / n))
}

fn train_bert(text: &str, out: &std::path::Path, device: &candle_core::Device) -> Result<()> {
    let tokenizer = Tokenizer::from(CharTokenizer::from_text(text)?);
    let data = Dataset::new(text, tokenizer.clone(), 0.1)?;
    let cfg = bert_model(tokenizer.vocab_size());
    let train = bert_training();
    println!("bert-kjv: {} parameters", cfg.n_params());
    let varmap = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&varmap, candle_core::DType::F32, device);
    let model = bert::Bert::new(&cfg, vb)?;
    let mut stepper = Stepper::new(&varmap, train.clone())?;
    let start = Instant::now();
    let mut last = (f32::NAN, f32::NAN);
    while !stepper.is_done() {
        let m = stepper.step(|rng| {
            let (x, _) = data.batch(Split::Train, train.batch_size, cfg.block_size, rng)?;
            let batch = bert::mask_tokens(&x, train.batch_size, cfg.block_size, cfg.mask_id(), rng);
            let (loss, _) = model.mlm_loss(&batch)?;
            Ok(MicroLoss {
                loss,
                tokens: batch.labels.len(),
            })
        })?;
        if stepper.should_eval() {
            last = mlm_accuracy(&model, &data, &train, cfg.block_size)?;
            println!(
                "step {:>5}  train {:.3}  val {:.3}  val MLM accuracy {:.1}%  {:.0}s",
                m.step,
                m.loss,
                last.0,
                100.0 * last.1,
                start.elapsed().as_secs_f64()
            );
        }
    }
    let checkpoint = ArchCheckpoint {
        meta: ArchMeta {
            format: bert::FORMAT.into(),
            model: cfg.clone(),
            tokenizer: tokenizer.clone(),
            step: stepper.step_count(),
            train: Some(train),
            metrics: [("val_loss".into(), last.0), ("mlm_accuracy".into(), last.1)].into(),
        },
        tensors: stepper.weights(),
    };
    let dir = out.join("bert-kjv");
    checkpoint.save(&dir)?;
    let mut ids = tokenizer.encode("And God said, Let there be light")?;
    ids[8] = cfg.mask_id(); // "And God s_id"
    let top = model.fill(&ids, 8, 3)?;
    let shown: Vec<String> = top
        .iter()
        .map(|(id, p)| Ok(format!("{:?} {:.2}", tokenizer.decode(&[*id])?, p)))
        .collect::<Result<_>>()?;
    println!(
        "wrote {}; 'And God s_id' -> {}",
        dir.display(),
        shown.join(", ")
    );
    Ok(())
}

/// The C4 T5: two encoder and two decoder blocks of width 64 (about 240k parameters, 1 MB).
fn t5_model(n_chars: usize) -> t5::Config {
    t5::Config {
        vocab_size: n_chars + t5::N_SPECIAL as usize,
        // "seven thousand seven hundred seventy-seven" is 42 characters, plus EOS.
        n_positions: 48,
        d_model: 64,
        d_ff: 256,
        num_layers: 2,
        num_decoder_layers: 2,
        num_heads: 4,
    }
}

fn t5_training() -> TrainConfig {
    TrainConfig {
        seed: 1337,
        batch_size: 32,
        // Loss sits near 1.8 (digits unrelated to the words) for a few hundred steps
        // before cross-attention learns where to look: measured 0.7% exact match after 800.
        max_steps: 3000,
        learning_rate: 3e-3,
        min_lr: 3e-4,
        warmup_steps: 50,
        eval_interval: 500,
        ..TrainConfig::default()
    }
}

/// Exact match of greedy decoding on `numbers`.
fn exact_match(model: &t5::T5, tokenizer: &Tokenizer, numbers: &[u32]) -> Result<f32> {
    let mut right = 0;
    for &n in numbers {
        let src = t5::encode(tokenizer, &numbers::words(n))?;
        let out = t5::decode(tokenizer, &model.greedy(&src, 8)?)?;
        right += usize::from(out == n.to_string());
    }
    Ok(right as f32 / numbers.len() as f32)
}

fn train_t5(out: &std::path::Path, device: &candle_core::Device) -> Result<()> {
    let tokenizer = Tokenizer::from(CharTokenizer::from_text(&numbers::alphabet())?);
    let cfg = t5_model(tokenizer.vocab_size());
    let train = t5_training();
    let (train_numbers, held_out) = numbers::split(train.seed, numbers::HELD_OUT);
    let pairs: Vec<(Vec<u32>, Vec<u32>)> = train_numbers
        .iter()
        .map(|&n| {
            Ok((
                t5::encode(&tokenizer, &numbers::words(n))?,
                t5::encode(&tokenizer, &n.to_string())?,
            ))
        })
        .collect::<Result<_>>()?;
    println!(
        "t5-numbers: {} parameters, {} training pairs, {} held out",
        cfg.n_params(),
        pairs.len(),
        held_out.len()
    );
    let varmap = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&varmap, candle_core::DType::F32, device);
    let model = t5::T5::new(&cfg, vb)?;
    let mut stepper = Stepper::new(&varmap, train.clone())?;
    let start = Instant::now();
    let mut accuracy = f32::NAN;
    while !stepper.is_done() {
        let m = stepper.step(|rng| {
            use rand::Rng;
            let batch: Vec<_> = (0..train.batch_size)
                .map(|_| pairs[rng.random_range(0..pairs.len())].clone())
                .collect();
            let batch = t5::Seq2SeqBatch::new(&batch)?;
            let (loss, _) = model.loss(&batch)?;
            let tokens = batch.tgt_out.iter().filter(|&&id| id != t5::PAD).count();
            Ok(MicroLoss { loss, tokens })
        })?;
        if stepper.should_eval() {
            // A quick look on 200 held-out numbers while training; all of them at the end.
            let look = if stepper.is_done() {
                &held_out[..]
            } else {
                &held_out[..200]
            };
            accuracy = exact_match(&model, &tokenizer, look)?;
            println!(
                "step {:>5}  train {:.3}  held-out exact match {:.1}% of {}  {:.0}s",
                m.step,
                m.loss,
                100.0 * accuracy,
                look.len(),
                start.elapsed().as_secs_f64()
            );
        }
    }
    let checkpoint = ArchCheckpoint {
        meta: ArchMeta {
            format: t5::FORMAT.into(),
            model: cfg,
            tokenizer: tokenizer.clone(),
            step: stepper.step_count(),
            train: Some(train),
            metrics: [("exact_match".into(), accuracy)].into(),
        },
        tensors: stepper.weights(),
    };
    let dir = out.join("t5-numbers");
    checkpoint.save(&dir)?;
    let src = t5::encode(&tokenizer, &numbers::words(held_out[0]))?;
    println!(
        "wrote {}; held out: {:?} -> {:?}",
        dir.display(),
        numbers::words(held_out[0]),
        t5::decode(&tokenizer, &model.greedy(&src, 8)?)?
    );
    Ok(())
}
