//! Exercises of lesson D1, Bigram to GPT: the bigram model's negative log-likelihood, one
//! head of causal softmax attention, and the loss of a model that knows nothing.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{Case, Grader, Kind, Tolerance, arg, matches};
use crate::Result;

pub(super) type Matrix = Vec<Vec<f64>>;

/// `bigram_nll(counts, ids)`: the mean of `-ln p(ids[t+1] | ids[t])` with
/// `p(j | i) = counts[i][j] / sum(counts[i])`.
pub struct BigramNll;

/// The reference, with the classic mistakes as switches so hints can recognise them.
#[derive(Clone, Copy, Default)]
struct NllVariant {
    sum_not_mean: bool,
    divide_by_len: bool,
    log10: bool,
    unnormalised: bool,
    transposed: bool,
    forgot_minus: bool,
}

fn bigram_nll(counts: &[Vec<u64>], ids: &[usize], v: NllVariant) -> f64 {
    let mut total = 0.0;
    for pair in ids.windows(2) {
        let (prev, next) = if v.transposed {
            (pair[1], pair[0])
        } else {
            (pair[0], pair[1])
        };
        let row_sum: u64 = counts[prev].iter().sum();
        let p = if v.unnormalised {
            counts[prev][next] as f64
        } else {
            counts[prev][next] as f64 / row_sum as f64
        };
        total += if v.log10 { p.log10() } else { p.ln() };
    }
    let n = if v.divide_by_len {
        ids.len()
    } else {
        ids.len() - 1
    };
    let mean = if v.sum_not_mean {
        total
    } else {
        total / n as f64
    };
    if v.forgot_minus { mean } else { -mean }
}

impl Grader for BigramNll {
    fn id(&self) -> &'static str {
        "bigram-nll"
    }

    fn kind(&self) -> Kind {
        Kind::Python {
            function: "bigram_nll".into(),
        }
    }

    fn cases(&self) -> Vec<Case> {
        // The worked example of the lesson: 2 tokens, "abba".
        let mut cases = vec![Case {
            name: "two tokens".into(),
            args: vec![json!([[1, 3], [2, 2]]), json!([0, 1, 1, 0])],
        }];
        let mut rng = ChaCha8Rng::seed_from_u64(0xd1_b1);
        for i in 0..6 {
            let vocab = rng.random_range(3..=7);
            let counts: Vec<Vec<u64>> = (0..vocab)
                .map(|_| (0..vocab).map(|_| rng.random_range(1..=20)).collect())
                .collect();
            let len = rng.random_range(3..=24);
            let ids: Vec<usize> = (0..len).map(|_| rng.random_range(0..vocab)).collect();
            cases.push(Case {
                name: format!("random #{} (vocab {vocab}, {len} tokens)", i + 1),
                args: vec![json!(counts), json!(ids)],
            });
        }
        cases
    }

    fn expected(&self, case: &Case) -> Result<Value> {
        let counts: Vec<Vec<u64>> = arg(case, 0)?;
        let ids: Vec<usize> = arg(case, 1)?;
        Ok(json!(bigram_nll(&counts, &ids, NllVariant::default())))
    }

    fn tolerance(&self) -> Tolerance {
        Tolerance {
            abs: 1e-6,
            rel: 1e-6,
        }
    }

    fn hint(&self, case: &Case, got: &Value) -> Option<String> {
        let counts: Vec<Vec<u64>> = arg(case, 0).ok()?;
        let ids: Vec<usize> = arg(case, 1).ok()?;
        let base = NllVariant::default();
        let mistakes = [
            (
                NllVariant {
                    forgot_minus: true,
                    ..base
                },
                "your value has the wrong sign: the loss is the *negative* mean log-probability, so it is always ≥ 0",
            ),
            (
                NllVariant {
                    sum_not_mean: true,
                    ..base
                },
                "you returned the sum over the pairs; divide by the number of pairs, len(ids) - 1, to get the mean",
            ),
            (
                NllVariant {
                    divide_by_len: true,
                    ..base
                },
                "a sequence of n tokens has n - 1 bigrams: divide by len(ids) - 1, not len(ids)",
            ),
            (
                NllVariant {
                    log10: true,
                    ..base
                },
                "use the natural logarithm (math.log), not math.log10: losses are measured in nats",
            ),
            (
                NllVariant {
                    unnormalised: true,
                    ..base
                },
                "turn each row of counts into probabilities first: p = counts[i][j] / sum(counts[i])",
            ),
            (
                NllVariant {
                    transposed: true,
                    ..base
                },
                "rows are the *previous* token: the probability of ids[t+1] after ids[t] is counts[ids[t]][ids[t+1]] / sum(counts[ids[t]])",
            ),
        ];
        let tol = self.tolerance();
        mistakes
            .iter()
            .find(|(v, _)| matches(got, &json!(bigram_nll(&counts, &ids, *v)), tol))
            .map(|(_, hint)| hint.to_string())
    }
}

/// `attention(q, k, v)`: one head of causal scaled dot-product attention on `(T, d)` lists.
pub struct AttentionHead;

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Scale {
    SqrtD,
    None,
    D,
}

#[derive(Clone, Copy)]
pub(super) struct AttnVariant {
    pub(super) scale: Scale,
    pub(super) causal: bool,
    /// Masked scores set to 0 instead of −∞, so the future still gets weight `e^0`.
    pub(super) mask_with_zero: bool,
    /// Softmax over the query axis (columns) instead of the key axis (rows).
    pub(super) softmax_over_queries: bool,
}

pub(super) const CORRECT: AttnVariant = AttnVariant {
    scale: Scale::SqrtD,
    causal: true,
    mask_with_zero: false,
    softmax_over_queries: false,
};

fn attention(q: &Matrix, k: &Matrix, v: &Matrix, var: AttnVariant) -> Matrix {
    masked_attention(q, k, v, &|i, j| !var.causal || j <= i, var)
}

/// Attention of `t_q` queries over `t_k` keys where query `i` may see key `j` when
/// `allowed(i, j)`; `var.causal` is ignored here (the mask says it all). Lesson C1's
/// general-mask exercise uses it to recognise the classic mistakes.
pub(super) fn masked_attention(
    q: &Matrix,
    k: &Matrix,
    v: &Matrix,
    allowed: &dyn Fn(usize, usize) -> bool,
    var: AttnVariant,
) -> Matrix {
    let (t_q, t_k) = (q.len(), k.len());
    let d = q.first().map_or(1, |row| row.len());
    let scale = match var.scale {
        Scale::SqrtD => 1.0 / (d as f64).sqrt(),
        Scale::None => 1.0,
        Scale::D => 1.0 / d as f64,
    };
    // scores[i][j] = q_i · k_j * scale, masked where key j is not allowed for query i.
    let mut scores: Matrix = (0..t_q)
        .map(|i| {
            (0..t_k)
                .map(|j| {
                    if !allowed(i, j) {
                        if var.mask_with_zero {
                            0.0
                        } else {
                            f64::NEG_INFINITY
                        }
                    } else {
                        q[i].iter().zip(&k[j]).map(|(a, b)| a * b).sum::<f64>() * scale
                    }
                })
                .collect()
        })
        .collect();
    let softmax = |xs: &mut [f64]| {
        let max = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let mut sum = 0.0;
        for x in xs.iter_mut() {
            *x = (*x - max).exp();
            sum += *x;
        }
        for x in xs.iter_mut() {
            *x /= sum;
        }
    };
    if var.softmax_over_queries {
        for j in 0..t_k {
            let mut col: Vec<f64> = scores.iter().map(|row| row[j]).collect();
            softmax(&mut col);
            for (row, x) in scores.iter_mut().zip(col) {
                row[j] = x;
            }
        }
    } else {
        for row in scores.iter_mut() {
            softmax(row);
        }
    }
    // out[i] = sum_j weights[i][j] * v_j
    (0..t_q)
        .map(|i| {
            (0..v[0].len())
                .map(|c| (0..t_k).map(|j| scores[i][j] * v[j][c]).sum())
                .collect()
        })
        .collect()
}

pub(super) fn random_matrix(rng: &mut ChaCha8Rng, rows: usize, cols: usize) -> Matrix {
    (0..rows)
        .map(|_| {
            (0..cols)
                // Two decimals keep the cases readable in feedback.
                .map(|_| (rng.random_range(-200..=200) as f64) / 100.0)
                .collect()
        })
        .collect()
}

impl Grader for AttentionHead {
    fn id(&self) -> &'static str {
        "attention-head"
    }

    fn kind(&self) -> Kind {
        Kind::Python {
            function: "attention".into(),
        }
    }

    fn cases(&self) -> Vec<Case> {
        let mut cases = vec![Case {
            name: "one token attends only to itself".into(),
            args: vec![
                json!([[1.0, 2.0]]),
                json!([[0.5, -1.0]]),
                json!([[3.0, 4.0]]),
            ],
        }];
        let mut rng = ChaCha8Rng::seed_from_u64(0xa77e);
        for i in 0..6 {
            let t = rng.random_range(2..=6);
            let d = rng.random_range(2..=4);
            let q = random_matrix(&mut rng, t, d);
            let k = random_matrix(&mut rng, t, d);
            let v = random_matrix(&mut rng, t, d);
            cases.push(Case {
                name: format!("random #{} (T = {t}, d = {d})", i + 1),
                args: vec![json!(q), json!(k), json!(v)],
            });
        }
        cases
    }

    fn expected(&self, case: &Case) -> Result<Value> {
        let (q, k, v): (Matrix, Matrix, Matrix) = (arg(case, 0)?, arg(case, 1)?, arg(case, 2)?);
        Ok(json!(attention(&q, &k, &v, CORRECT)))
    }

    fn hint(&self, case: &Case, got: &Value) -> Option<String> {
        let (q, k, v): (Matrix, Matrix, Matrix) =
            (arg(case, 0).ok()?, arg(case, 1).ok()?, arg(case, 2).ok()?);
        let mistakes = [
            (
                AttnVariant {
                    causal: false,
                    ..CORRECT
                },
                "token i must not see tokens after it: set the scores for j > i to -inf (float('-inf')) before the softmax",
            ),
            (
                AttnVariant {
                    mask_with_zero: true,
                    ..CORRECT
                },
                "masking with 0 is not masking: e^0 = 1 still gives the future weight. Use float('-inf') so that e^-inf = 0",
            ),
            (
                AttnVariant {
                    scale: Scale::None,
                    ..CORRECT
                },
                "scale the scores by 1/sqrt(d) (d = len(q[0])) before the softmax",
            ),
            (
                AttnVariant {
                    scale: Scale::D,
                    ..CORRECT
                },
                "the scale is 1/sqrt(d), not 1/d",
            ),
            (
                AttnVariant {
                    softmax_over_queries: true,
                    ..CORRECT
                },
                "take the softmax of each row (over the keys j for a fixed query i), so that each query's weights sum to 1",
            ),
        ];
        let tol = self.tolerance();
        mistakes
            .iter()
            .find(|(var, _)| matches(got, &json!(attention(&q, &k, &v, *var)), tol))
            .map(|(_, hint)| hint.to_string())
    }
}

/// Numeric: the loss of a model that spreads probability evenly over 65 characters.
pub struct UniformLoss;

const UNIFORM_VOCAB: f64 = 65.0;

impl Grader for UniformLoss {
    fn id(&self) -> &'static str {
        "uniform-loss"
    }

    fn kind(&self) -> Kind {
        Kind::Numeric
    }

    fn cases(&self) -> Vec<Case> {
        vec![Case {
            name: "your answer".into(),
            args: vec![],
        }]
    }

    fn expected(&self, _case: &Case) -> Result<Value> {
        Ok(json!(UNIFORM_VOCAB.ln()))
    }

    fn tolerance(&self) -> Tolerance {
        // Typed by hand: three decimals are enough.
        Tolerance {
            abs: 5e-3,
            rel: 0.0,
        }
    }

    fn hint(&self, _case: &Case, got: &Value) -> Option<String> {
        let got = got.as_f64()?;
        let close = |x: f64| (got - x).abs() < 5e-3;
        if close(UNIFORM_VOCAB.log10()) || close(UNIFORM_VOCAB.log2()) {
            Some("losses use the natural logarithm: ln(65)".into())
        } else if close(1.0 / UNIFORM_VOCAB) {
            Some("1/65 is the probability of the right character; the loss is -ln of it".into())
        } else if close(-UNIFORM_VOCAB.ln()) {
            Some("the loss is the *negative* log-probability, so it is positive".into())
        } else {
            None
        }
    }
}
