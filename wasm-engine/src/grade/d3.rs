//! Exercise of lesson D3, Pretraining on the runner: estimate a job's size and cost from its
//! config before submitting it: exact parameter count, training FLOPs (≈ 6·N·D), tokens/s
//! and wall time at a sustained FLOP/s.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Case, Grader, Kind, Tolerance, arg, matches};
use crate::Result;
use crate::model::gpt;

/// `estimate(model, train, flops_per_sec)` → `[n_params, flops, tokens_per_sec, seconds]`.
pub struct JobEstimate;

/// The model part of a case, as the student's dict has it (a subset of `gpt::Config`).
#[derive(Clone, Copy, Debug, Deserialize)]
struct Model {
    vocab_size: usize,
    block_size: usize,
    n_layer: usize,
    n_head: usize,
    n_embd: usize,
    bias: bool,
}

impl Model {
    fn config(self) -> gpt::Config {
        gpt::Config {
            vocab_size: self.vocab_size,
            block_size: self.block_size,
            n_layer: self.n_layer,
            n_head: self.n_head,
            n_embd: self.n_embd,
            dropout: 0.0,
            bias: self.bias,
            ..Default::default()
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize)]
struct Train {
    batch_size: usize,
    grad_accum_steps: usize,
    max_steps: usize,
}

/// The reference, with the classic mistakes as switches so hints can recognise them.
#[derive(Clone, Copy, Default)]
struct Variant {
    /// Tied head counted as a second `vocab × n_embd` matrix.
    head_twice: bool,
    no_positions: bool,
    /// Biases counted although the model has none.
    bias_anyway: bool,
    /// Only the `12·L·C²` of the blocks' matrices.
    blocks_only: bool,
    /// `2·N·D`: the forward pass alone.
    forward_only: bool,
    /// `N·D`: no factor at all.
    no_factor: bool,
    /// Sequences instead of tokens.
    no_block_size: bool,
    no_accum: bool,
}

fn n_params(m: Model, v: Variant) -> f64 {
    let c = m.n_embd as f64;
    if v.blocks_only {
        return 12.0 * m.n_layer as f64 * c * c;
    }
    let cfg = gpt::Config {
        bias: m.bias || v.bias_anyway,
        ..m.config()
    };
    let mut n = cfg.n_params() as f64;
    if v.head_twice {
        n += m.vocab_size as f64 * c;
    }
    if v.no_positions {
        n -= m.block_size as f64 * c;
    }
    n
}

fn tokens(m: Model, t: Train, v: Variant) -> f64 {
    let per_seq = if v.no_block_size { 1 } else { m.block_size };
    let accum = if v.no_accum { 1 } else { t.grad_accum_steps };
    // In f64: the product passes 2^32, and usize is 32 bits in the browser.
    t.batch_size as f64 * accum as f64 * per_seq as f64 * t.max_steps as f64
}

fn flops_per_token(v: Variant) -> f64 {
    if v.no_factor {
        1.0
    } else if v.forward_only {
        2.0
    } else {
        6.0
    }
}

fn estimate(m: Model, t: Train, flops_per_sec: f64, v: Variant) -> [f64; 4] {
    let n = n_params(m, v);
    let d = tokens(m, t, v);
    let flops = flops_per_token(v) * n * d;
    let tokens_per_sec = flops_per_sec / (flops_per_token(v) * n);
    [n, flops, tokens_per_sec, d / tokens_per_sec]
}

const HINTS: &[(Variant, usize, &str)] = &[
    (
        Variant {
            head_twice: true,
            ..NONE
        },
        0,
        "the output head is tied to the token embedding (lm_head.weight is wte.weight): count vocab_size × n_embd once, not twice",
    ),
    (
        Variant {
            no_positions: true,
            ..NONE
        },
        0,
        "the learned position embedding wpe has block_size × n_embd parameters too",
    ),
    (
        Variant {
            bias_anyway: true,
            ..NONE
        },
        0,
        "this model has bias = False: its linear layers and LayerNorms have no bias vectors",
    ),
    (
        Variant {
            blocks_only: true,
            ..NONE
        },
        0,
        "12·n_layer·n_embd² is the blocks' matrices only; the exact count adds the embeddings, the biases and the LayerNorms (two per block and ln_f)",
    ),
    (
        Variant {
            forward_only: true,
            ..NONE
        },
        1,
        "2·N·D is the forward pass alone; the backward pass costs about twice as much again, so training is ≈ 6·N·D",
    ),
    (
        Variant {
            no_factor: true,
            ..NONE
        },
        1,
        "each token costs about 6 FLOPs per parameter in training (2 forward: a multiply and an add; 4 backward): FLOPs ≈ 6·N·D",
    ),
    (
        Variant {
            no_block_size: true,
            ..NONE
        },
        1,
        "D counts tokens, not sequences: every sequence in a batch holds block_size tokens",
    ),
    (
        Variant {
            no_accum: true,
            ..NONE
        },
        1,
        "one optimizer step runs grad_accum_steps micro-batches, so it sees batch_size × grad_accum_steps × block_size tokens",
    ),
    (
        Variant {
            forward_only: true,
            ..NONE
        },
        2,
        "a trained token costs 6·N FLOPs, not 2·N: tokens/s = FLOP/s ÷ (6·N)",
    ),
    (
        Variant {
            no_factor: true,
            ..NONE
        },
        2,
        "a trained token costs 6·N FLOPs: tokens/s = FLOP/s ÷ (6·N)",
    ),
];

const NONE: Variant = Variant {
    head_twice: false,
    no_positions: false,
    bias_anyway: false,
    blocks_only: false,
    forward_only: false,
    no_factor: false,
    no_block_size: false,
    no_accum: false,
};

/// A model of the lesson's size, as a case's first argument.
fn model_json(m: Model) -> Value {
    json!({
        "vocab_size": m.vocab_size,
        "block_size": m.block_size,
        "n_layer": m.n_layer,
        "n_head": m.n_head,
        "n_embd": m.n_embd,
        "bias": m.bias,
    })
}

fn train_json(t: Train) -> Value {
    json!({
        "batch_size": t.batch_size,
        "grad_accum_steps": t.grad_accum_steps,
        "max_steps": t.max_steps,
    })
}

impl Grader for JobEstimate {
    fn id(&self) -> &'static str {
        "job-estimate"
    }

    fn kind(&self) -> Kind {
        Kind::Python {
            function: "estimate".into(),
        }
    }

    fn cases(&self) -> Vec<Case> {
        let case = |name: String, m: Model, t: Train, flops_per_sec: f64| Case {
            name,
            args: vec![model_json(m), train_json(t), json!(flops_per_sec)],
        };
        // The lesson's worked example, then GPT-2 small (124 439 808 parameters) on a GPU.
        let mut cases = vec![
            case(
                "the lesson's example".into(),
                Model {
                    vocab_size: 65,
                    block_size: 64,
                    n_layer: 2,
                    n_head: 4,
                    n_embd: 64,
                    bias: true,
                },
                Train {
                    batch_size: 16,
                    grad_accum_steps: 1,
                    max_steps: 600,
                },
                1e9,
            ),
            case(
                "GPT-2 small on an A100".into(),
                Model {
                    vocab_size: 50257,
                    block_size: 1024,
                    n_layer: 12,
                    n_head: 12,
                    n_embd: 768,
                    bias: true,
                },
                Train {
                    batch_size: 12,
                    grad_accum_steps: 40,
                    max_steps: 600_000,
                },
                1.25e14,
            ),
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(0xd3);
        for i in 0..5 {
            let n_head = [1, 2, 4, 8][rng.random_range(0..4)];
            let m = Model {
                vocab_size: rng.random_range(60..=2048),
                block_size: [32, 64, 128, 256][rng.random_range(0..4)],
                n_layer: rng.random_range(1..=8),
                n_head,
                n_embd: n_head * [16, 32, 48, 64][rng.random_range(0..4)],
                // One case in two without biases (nanoGPT's bias=False).
                bias: i % 2 == 0,
            };
            let t = Train {
                batch_size: rng.random_range(4..=64),
                grad_accum_steps: rng.random_range(1..=4),
                max_steps: rng.random_range(100..=5000),
            };
            let flops_per_sec = [2e9, 5e10, 3e13][rng.random_range(0..3)];
            cases.push(case(
                format!(
                    "random #{} ({} layers × {}, bias {})",
                    i + 1,
                    m.n_layer,
                    m.n_embd,
                    if m.bias { "True" } else { "False" }
                ),
                m,
                t,
                flops_per_sec,
            ));
        }
        cases
    }

    fn expected(&self, case: &Case) -> Result<Value> {
        let (m, t, f) = parse(case)?;
        Ok(json!(estimate(m, t, f, NONE)))
    }

    fn tolerance(&self) -> Tolerance {
        // Exact arithmetic on integers; floats only from the division.
        Tolerance {
            abs: 1e-6,
            rel: 1e-9,
        }
    }

    fn hint(&self, case: &Case, got: &Value) -> Option<String> {
        let (m, t, f) = parse(case).ok()?;
        let got = got.as_array()?;
        let tol = self.tolerance();
        let right = estimate(m, t, f, NONE);
        // Name the first wrong number's mistake: a wrong N makes every later number wrong too.
        let first_wrong = (0..4).find(|&i| {
            got.get(i)
                .is_none_or(|g| !matches(g, &json!(right[i]), tol))
        })?;
        HINTS
            .iter()
            .filter(|(_, at, _)| *at == first_wrong)
            .find(|(v, at, _)| {
                got.get(*at)
                    .is_some_and(|g| matches(g, &json!(estimate(m, t, f, *v)[*at]), tol))
            })
            .map(|(_, _, hint)| hint.to_string())
            .or_else(|| {
                (first_wrong == 3)
                    .then(|| "time = D ÷ tokens/s, the same as total FLOPs ÷ FLOP/s".to_string())
            })
    }
}

fn parse(case: &Case) -> Result<(Model, Train, f64)> {
    Ok((arg(case, 0)?, arg(case, 1)?, arg(case, 2)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grade::{Outcome, grade};

    /// What a student's function returns for every case: the numbers before `from` computed
    /// with `right`, the rest with `wrong`.
    fn outcomes(right: Variant, wrong: Variant, from: usize) -> Vec<Outcome> {
        JobEstimate
            .cases()
            .iter()
            .map(|c| {
                let (m, t, f) = parse(c).unwrap();
                let (r, w) = (estimate(m, t, f, right), estimate(m, t, f, wrong));
                let got: Vec<f64> = (0..4).map(|i| if i < from { r[i] } else { w[i] }).collect();
                Outcome::Returned(json!(got))
            })
            .collect()
    }

    #[test]
    fn gpt2_small_has_its_published_parameter_count() {
        let case = &JobEstimate.cases()[1];
        let (m, t, f) = parse(case).unwrap();
        let [n, flops, tps, secs] = estimate(m, t, f, NONE);
        assert_eq!(n, 124_439_808.0);
        // nanoGPT's GPT-2 run: 491 520 tokens a step × 600 000 steps ≈ 2.95e11 tokens.
        let d = 12.0 * 40.0 * 1024.0 * 600_000.0;
        assert_eq!(flops, 6.0 * n * d);
        assert!((tps - 1.25e14 / (6.0 * n)).abs() < 1e-6);
        assert!((secs - d / tps).abs() / secs < 1e-12);
        // About 2.2e20 FLOPs: some 20 days at 125 TFLOP/s.
        assert!((2.1e20..2.3e20).contains(&flops), "{flops:e}");
    }

    #[test]
    fn the_lessons_example_matches_its_prose() {
        let (m, t, f) = parse(&JobEstimate.cases()[0]).unwrap();
        let [n, flops, tps, secs] = estimate(m, t, f, NONE);
        // 65·64 + 64·64 + 2·(12·64² + 13·64) + 2·64
        assert_eq!(n, 108_352.0);
        assert_eq!(flops, 6.0 * 108_352.0 * 614_400.0);
        assert!((tps - 1e9 / 650_112.0).abs() < 1e-9);
        assert!((secs - 399.43).abs() < 0.01, "{secs}");
    }

    #[test]
    fn the_reference_passes_and_each_mistake_fails_with_its_hint() {
        let verdict = grade("job-estimate", &outcomes(NONE, NONE, 0)).unwrap();
        assert!(verdict.passed, "{verdict:?}");
        for (v, at, hint) in HINTS {
            let verdict = grade("job-estimate", &outcomes(NONE, *v, *at)).unwrap();
            assert!(!verdict.passed);
            let failure = verdict.failure.unwrap();
            assert!(failure.reason.contains(&format!("[{at}]")), "{failure:?}");
            assert_eq!(failure.hint.as_deref(), Some(*hint));
        }
    }

    #[test]
    fn a_wrong_time_alone_gets_the_time_hint() {
        let outcomes: Vec<Outcome> = JobEstimate
            .cases()
            .iter()
            .map(|c| {
                let (m, t, f) = parse(c).unwrap();
                let [n, flops, tps, _] = estimate(m, t, f, NONE);
                Outcome::Returned(json!([n, flops, tps, flops / tps]))
            })
            .collect();
        let failure = grade("job-estimate", &outcomes).unwrap().failure.unwrap();
        assert!(failure.hint.unwrap().contains("D ÷ tokens/s"));
    }

    #[test]
    fn every_case_is_a_valid_model() {
        for c in JobEstimate.cases() {
            let (m, _, _) = parse(&c).unwrap();
            m.config().validate().unwrap();
        }
    }
}
