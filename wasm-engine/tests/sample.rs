//! Sampling: the filtered distributions, seeding, and the KV cache giving identical tokens.

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use engine::model::gpt::{Config, Gpt};
use engine::sample::{Generator, SamplingConfig, distribution, generate, penalize_repeats};

mod common;

/// A small model with seeded weights large enough that its distributions are far from flat.
fn model(block_size: usize) -> Gpt {
    let cfg = Config {
        vocab_size: 11,
        block_size,
        n_layer: 2,
        n_head: 2,
        n_embd: 16,
        dropout: 0.0,
        bias: true,
        ..Default::default()
    };
    let varmap = VarMap::new();
    let model = Gpt::new(
        &cfg,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )
    .unwrap();
    common::seed_weights(&varmap, 3, 0.6, DType::F32);
    model
}

fn approx(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
}

#[test]
fn greedy_is_one_hot_on_the_argmax() {
    let p = distribution(&[0.1, 2.0, -1.0, 2.0], &SamplingConfig::greedy());
    assert_eq!(p, vec![0.0, 1.0, 0.0, 0.0]); // ties go to the lower id
}

#[test]
fn temperature_top_k_and_top_p_cut_the_distribution() {
    let logits: Vec<f32> = [0.5f32, 0.3, 0.2].iter().map(|p| p.ln()).collect();
    let plain = SamplingConfig::default();
    assert!(approx(&distribution(&logits, &plain), &[0.5, 0.3, 0.2]));

    // T = 2 flattens: p ∝ √p_i.
    let hot = SamplingConfig {
        temperature: 2.0,
        ..plain.clone()
    };
    let s: f32 = [0.5f32, 0.3, 0.2].iter().map(|p| p.sqrt()).sum();
    let expected: Vec<f32> = [0.5f32, 0.3, 0.2].iter().map(|p| p.sqrt() / s).collect();
    assert!(approx(&distribution(&logits, &hot), &expected));

    let top_k = SamplingConfig {
        top_k: Some(2),
        ..plain.clone()
    };
    assert!(approx(&distribution(&logits, &top_k), &[0.625, 0.375, 0.0]));

    // The nucleus is the smallest prefix whose mass reaches p: 0.5 < 0.6 ≤ 0.5 + 0.3.
    let top_p = SamplingConfig {
        top_p: Some(0.6),
        ..plain.clone()
    };
    assert!(approx(&distribution(&logits, &top_p), &[0.625, 0.375, 0.0]));
    let tight = SamplingConfig {
        top_p: Some(0.5),
        ..plain
    };
    assert!(approx(&distribution(&logits, &tight), &[1.0, 0.0, 0.0]));
}

#[test]
fn bad_settings_are_errors() {
    let m = model(8);
    for cfg in [
        SamplingConfig {
            top_p: Some(0.0),
            ..SamplingConfig::default()
        },
        SamplingConfig {
            top_k: Some(0),
            ..SamplingConfig::default()
        },
        SamplingConfig {
            temperature: -1.0,
            ..SamplingConfig::default()
        },
    ] {
        assert!(generate(&m, &[1], 3, &cfg, true).is_err(), "{cfg:?}");
    }
    assert!(generate(&m, &[], 3, &SamplingConfig::default(), true).is_err());
    assert!(generate(&m, &[99], 3, &SamplingConfig::default(), true).is_err());
}

#[test]
fn kv_cache_gives_identical_tokens() {
    let m = model(16);
    let settings = [
        SamplingConfig::greedy(),
        SamplingConfig {
            temperature: 1.0,
            seed: 5,
            ..SamplingConfig::default()
        },
        SamplingConfig {
            temperature: 0.8,
            top_k: Some(4),
            top_p: Some(0.9),
            seed: 9,
            repetition_penalty: 1.3,
        },
    ];
    for cfg in settings {
        // 40 tokens from a 3-token prompt runs well past the 16-token context, where the
        // window slides and the cache is rebuilt.
        let plain = generate(&m, &[1, 2, 3], 40, &cfg, false).unwrap();
        let cached = generate(&m, &[1, 2, 3], 40, &cfg, true).unwrap();
        assert_eq!(plain, cached, "{cfg:?}");
        assert_eq!(plain.len(), 40);
    }
}

#[test]
fn sampling_is_seeded() {
    let m = model(32);
    let cfg = |seed| SamplingConfig {
        seed,
        ..SamplingConfig::default()
    };
    let a = generate(&m, &[4], 20, &cfg(1), true).unwrap();
    assert_eq!(a, generate(&m, &[4], 20, &cfg(1), true).unwrap());
    assert_ne!(a, generate(&m, &[4], 20, &cfg(2), true).unwrap());
}

#[test]
fn the_generator_exposes_each_distribution() {
    let m = model(32);
    let mut g = Generator::new(&m, &[1, 2], SamplingConfig::default(), true).unwrap();
    let token = g.next_token().unwrap();
    let p = g.last_distribution();
    assert_eq!(p.len(), 11);
    assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    assert!(p[token as usize] > 0.0);
    assert_eq!(g.tokens(), &[1, 2, token]);
    // 2 layers × 2 (k, v) × 16 wide × 3 positions × 4 bytes (the newest token is not yet fed).
    g.next_token().unwrap();
    assert_eq!(g.cache_bytes(), 2 * 2 * 16 * 3 * 4);
}

#[test]
fn repetition_penalty_divides_positive_and_multiplies_negative_logits() {
    // Token 1 occurs twice but is penalised once; token 3 never occurred.
    let mut logits = [2.0, -1.0, 0.5, 3.0];
    penalize_repeats(&mut logits, &[0, 1, 1, 2], 2.0);
    assert_eq!(logits, [1.0, -2.0, 0.25, 3.0]);
    let mut same = [2.0, -1.0];
    penalize_repeats(&mut same, &[0, 1], 1.0);
    assert_eq!(same, [2.0, -1.0], "1 turns it off");
    let bad = SamplingConfig {
        repetition_penalty: 0.0,
        ..SamplingConfig::default()
    };
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("repetition_penalty")
    );
}

#[test]
fn the_generator_applies_the_penalty_and_exposes_its_logits() {
    let m = model(32);
    let plain = SamplingConfig::greedy();
    let penalised = SamplingConfig {
        repetition_penalty: 1e3,
        ..SamplingConfig::greedy()
    };
    let mut a = Generator::new(&m, &[1, 2], plain, true).unwrap();
    let mut b = Generator::new(&m, &[1, 2], penalised.clone(), true).unwrap();
    a.next_token().unwrap();
    b.next_token().unwrap();
    let (za, zb) = (a.last_logits(), b.last_logits());
    for i in 0..11 {
        if i == 1 || i == 2 {
            assert!(zb[i] < za[i] || za[i] == 0.0, "token {i} is penalised");
        } else {
            assert_eq!(za[i], zb[i], "token {i} is untouched");
        }
    }
    // Greedy decoding of this model falls into a loop; the penalty pushes it to new tokens.
    let distinct = |cfg: &SamplingConfig| {
        let mut out = generate(&m, &[1, 2], 12, cfg, true).unwrap();
        out.sort();
        out.dedup();
        out.len()
    };
    let (loop_len, spread) = (distinct(&SamplingConfig::greedy()), distinct(&penalised));
    assert!(spread > loop_len, "{spread} vs {loop_len}");
}
