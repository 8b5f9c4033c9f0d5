//! Training: the schedule, AdamW, clipping, resuming, bad input, and proof that a small GPT
//! learns the corpus.

use candle_core::{Device, Tensor, Var};
use engine::Error;
use engine::data::Dataset;
use engine::model::gpt::Config;
use engine::tokenizer::{CharTokenizer, Tokenizer};
use engine::train::adamw::AdamW;
use engine::train::{TrainConfig, Trainer, clip_grad_norm};

fn corpus() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../static/data/kjv.txt");
    std::fs::read_to_string(path).expect("the shipped corpus static/data/kjv.txt")
}

fn char_dataset(text: &str) -> Dataset {
    let tokenizer = Tokenizer::from(CharTokenizer::from_text(text).unwrap());
    Dataset::new(text, tokenizer, 0.1).unwrap()
}

fn small_model(vocab_size: usize, block_size: usize) -> Config {
    Config {
        vocab_size,
        block_size,
        n_layer: 2,
        n_head: 4,
        n_embd: 64,
        dropout: 0.0,
        bias: true,
        ..Default::default()
    }
}

#[test]
fn schedule_warms_up_then_decays_to_the_floor() {
    let cfg = TrainConfig {
        learning_rate: 1e-3,
        min_lr: 1e-4,
        warmup_steps: 10,
        max_steps: 110,
        ..TrainConfig::default()
    };
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    assert!(close(cfg.lr_at(0), 1e-3 / 11.0));
    assert!(close(cfg.lr_at(9), 1e-3 * 10.0 / 11.0));
    assert!(close(cfg.lr_at(10), 1e-3)); // top of the cosine
    assert!(close(cfg.lr_at(60), 5.5e-4)); // halfway: (max + min) / 2
    assert!(close(cfg.lr_at(110), 1e-4));
    assert!(close(cfg.lr_at(500), 1e-4));
    assert!(cfg.lr_at(30) > cfg.lr_at(31));
}

#[test]
fn adamw_first_step_matches_hand_computation() {
    // First step: m̂ = g and v̂ = g², so the update is lr · g/|g| = lr · sign(g) (ε aside);
    // the matrix also decays by lr · λ, the vector (a bias) does not.
    let w = Var::from_vec(vec![1.0f32, -2.0], (1, 2), &Device::Cpu).unwrap();
    let b = Var::from_vec(vec![3.0f32], 1, &Device::Cpu).unwrap();
    let params = vec![("w".to_string(), w.clone()), ("b".to_string(), b.clone())];
    let mut opt = AdamW::new(&params, 0.9, 0.999, 0.1).unwrap();
    let gw = Tensor::new(&[[0.5f32, 0.1]], &Device::Cpu).unwrap();
    let gb = Tensor::new(&[-4.0f32], &Device::Cpu).unwrap();
    opt.step(&[gw, gb], 0.1).unwrap();
    let w = w
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let b = b.as_tensor().to_vec1::<f32>().unwrap();
    // w = w(1 - 0.1·0.1) - 0.1·sign(g) = [0.99 - 0.1, -1.98 - 0.1]
    assert!(
        (w[0] - 0.89).abs() < 1e-6 && (w[1] - -2.08).abs() < 1e-6,
        "{w:?}"
    );
    assert!((b[0] - 3.1).abs() < 1e-6, "{b:?}");
    assert_eq!(opt.updates(), 1);
}

#[test]
fn clipping_scales_to_the_global_norm() {
    let grads = vec![
        Tensor::new(&[3.0f32], &Device::Cpu).unwrap(),
        Tensor::new(&[[4.0f32]], &Device::Cpu).unwrap(),
    ];
    let (clipped, norm) = clip_grad_norm(grads.clone(), 1.0).unwrap();
    assert_eq!(norm, 5.0);
    let a = clipped[0].to_vec1::<f32>().unwrap()[0];
    let b = clipped[1].flatten_all().unwrap().to_vec1::<f32>().unwrap()[0];
    assert!((a - 0.6).abs() < 1e-5 && (b - 0.8).abs() < 1e-5, "{a} {b}");
    // Under the limit, or with clipping off, gradients pass unchanged.
    let (same, _) = clip_grad_norm(grads.clone(), 10.0).unwrap();
    assert_eq!(same[0].to_vec1::<f32>().unwrap(), vec![3.0]);
    let (same, _) = clip_grad_norm(grads, 0.0).unwrap();
    assert_eq!(same[0].to_vec1::<f32>().unwrap(), vec![3.0]);
}

/// Cross-entropy (nats per char) of the validation split under the train split's character
/// frequencies: what a model that ignores context can reach.
fn unigram_baseline(data: &Dataset) -> f64 {
    let mut counts = vec![1f64; data.tokenizer.vocab_size()]; // add-one smoothing
    for &id in &data.train {
        counts[id as usize] += 1.0;
    }
    let total: f64 = counts.iter().sum();
    let nll: f64 = data
        .val
        .iter()
        .map(|&id| -(counts[id as usize] / total).ln())
        .sum();
    nll / data.val.len() as f64
}

#[test]
fn a_small_gpt_learns_the_corpus() {
    let text = corpus();
    let data = char_dataset(&text);
    let baseline = unigram_baseline(&data);
    let model = small_model(data.tokenizer.vocab_size(), 64);
    let config = TrainConfig {
        batch_size: 16,
        max_steps: 300,
        learning_rate: 3e-3,
        min_lr: 3e-4,
        warmup_steps: 30,
        eval_batches: 8,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(model, config, data, &Device::Cpu).unwrap();
    let before = trainer.estimate_loss().unwrap();
    let mut last = None;
    while !trainer.is_done() {
        let m = trainer.step().unwrap();
        assert!(m.loss.is_finite() && m.grad_norm.is_finite() && m.tokens_per_sec > 0.0);
        last = Some(m);
    }
    let after = trainer.estimate_loss().unwrap();
    let last = last.unwrap();
    println!(
        "unigram baseline {baseline:.3} nats; val loss {:.3} at init, {:.3} after {} steps ({:.0} tokens/s)",
        before.val, after.val, last.step, last.tokens_per_sec
    );
    assert!(
        (before.val - 4.13).abs() < 0.1,
        "init loss {} ≈ ln 63",
        before.val
    );
    // The unigram baseline of this corpus is about 3.0 nats; a model that uses context must
    // beat it by a wide margin.
    assert!((baseline - 3.0).abs() < 0.2, "baseline {baseline}");
    assert!(
        (after.val as f64) < baseline - 0.6,
        "val loss {} is not well below the unigram baseline {baseline}",
        after.val
    );
}

fn flat_weights(trainer: &Trainer) -> Vec<f32> {
    let checkpoint = trainer.checkpoint();
    let mut names: Vec<_> = checkpoint.tensors.keys().cloned().collect();
    names.sort();
    names
        .iter()
        .flat_map(|n| {
            checkpoint.tensors[n]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

#[test]
fn a_resumed_run_continues_exactly() {
    let text = &corpus()[..200_000];
    let config = TrainConfig {
        batch_size: 4,
        max_steps: 6,
        warmup_steps: 2,
        grad_accum_steps: 2,
        ..TrainConfig::default()
    };
    let model = small_model(char_dataset(text).tokenizer.vocab_size(), 32);
    let mut straight = Trainer::new(
        model.clone(),
        config.clone(),
        char_dataset(text),
        &Device::Cpu,
    )
    .unwrap();
    for _ in 0..6 {
        straight.step().unwrap();
    }
    let mut first = Trainer::new(model, config, char_dataset(text), &Device::Cpu).unwrap();
    for _ in 0..3 {
        first.step().unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    first.save_state(dir.path()).unwrap();
    drop(first);
    let mut resumed = Trainer::resume(dir.path(), char_dataset(text), &Device::Cpu).unwrap();
    assert_eq!(resumed.step_count(), 3);
    for _ in 0..3 {
        resumed.step().unwrap();
    }
    assert!(resumed.is_done());
    assert_eq!(flat_weights(&straight), flat_weights(&resumed));
}

#[test]
fn fine_tuning_starts_from_the_checkpoints_weights() {
    let text = &corpus()[..100_000];
    let config = TrainConfig {
        batch_size: 2,
        max_steps: 3,
        ..TrainConfig::default()
    };
    let model = small_model(char_dataset(text).tokenizer.vocab_size(), 16);
    let mut base = Trainer::new(model, config.clone(), char_dataset(text), &Device::Cpu).unwrap();
    for _ in 0..3 {
        base.step().unwrap();
    }
    let checkpoint = base.checkpoint();
    let tuned_config = TrainConfig {
        seed: 99, // a different seed must not re-initialise the weights
        max_steps: 2,
        ..config
    };
    let mut tuned =
        Trainer::from_checkpoint(&checkpoint, tuned_config, char_dataset(text), &Device::Cpu)
            .unwrap();
    assert_eq!(tuned.step_count(), 0, "a new run, not a resumed one");
    assert_eq!(flat_weights(&tuned), flat_weights(&base));
    tuned.step().unwrap();
    assert_ne!(flat_weights(&tuned), flat_weights(&base), "it trains");

    let mut missing = checkpoint.clone();
    missing.tensors.remove("wte.weight");
    let err = Trainer::from_checkpoint(
        &missing,
        TrainConfig::default(),
        char_dataset(text),
        &Device::Cpu,
    )
    .err()
    .expect("a checkpoint without wte.weight cannot start a run");
    assert!(err.to_string().contains("wte.weight"), "{err}");
}

#[test]
fn the_same_seed_trains_the_same_model() {
    let text = &corpus()[..100_000];
    let config = TrainConfig {
        batch_size: 2,
        max_steps: 2,
        ..TrainConfig::default()
    };
    let model = small_model(char_dataset(text).tokenizer.vocab_size(), 16);
    let run = |seed| {
        let cfg = TrainConfig {
            seed,
            ..config.clone()
        };
        let mut t = Trainer::new(model.clone(), cfg, char_dataset(text), &Device::Cpu).unwrap();
        t.step().unwrap();
        t.step().unwrap();
        flat_weights(&t)
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn bad_input_is_a_typed_error() {
    let tokenizer = Tokenizer::from(CharTokenizer::from_text("abc").unwrap());
    assert!(matches!(
        Dataset::new("", tokenizer.clone(), 0.1),
        Err(Error::Corpus(_))
    ));

    // A corpus too short for one window of the context.
    let data = Dataset::new("abcabcabcabc", tokenizer, 0.5).unwrap();
    let err = Trainer::new(
        small_model(3, 16),
        TrainConfig::default(),
        data.clone(),
        &Device::Cpu,
    )
    .err()
    .unwrap();
    assert!(matches!(err, Error::Corpus(_)), "{err}");
    assert!(err.to_string().contains("block_size"), "{err}");

    // A vocabulary that does not match the tokenizer's.
    let err = Trainer::new(
        small_model(5, 2),
        TrainConfig::default(),
        data.clone(),
        &Device::Cpu,
    )
    .err()
    .unwrap();
    assert!(
        matches!(&err, Error::Config { field, .. } if field == "vocab_size"),
        "{err}"
    );

    // Zero heads, and a zero batch.
    let no_heads = Config {
        n_head: 0,
        ..small_model(3, 2)
    };
    let err = Trainer::new(no_heads, TrainConfig::default(), data.clone(), &Device::Cpu)
        .err()
        .unwrap();
    assert!(
        matches!(&err, Error::Config { field, .. } if field == "n_head"),
        "{err}"
    );
    let no_batch = TrainConfig {
        batch_size: 0,
        ..TrainConfig::default()
    };
    let err = Trainer::new(small_model(3, 2), no_batch, data, &Device::Cpu)
        .err()
        .unwrap();
    assert!(
        matches!(&err, Error::Config { field, .. } if field == "batch_size"),
        "{err}"
    );
}
