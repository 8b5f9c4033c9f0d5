//! Exercise of lesson E1, Decoding: top-p (nucleus) filtering of a next-token distribution,
//! as `sample::distribution` does it after the temperature and top-k.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{Case, Grader, Kind, Tolerance, arg, matches};
use crate::Result;

/// `top_p_filter(probs, p)`: keep the smallest set of most likely tokens whose probabilities
/// sum to at least `p`, zero the rest, and renormalise, in the original token order.
pub struct TopP;

/// The reference, with the classic mistakes as switches so hints can recognise them.
#[derive(Clone, Copy, Default)]
struct Variant {
    /// Kept probabilities left as they were (they no longer sum to 1).
    no_renormalise: bool,
    /// Stops *before* the token that crosses p (keeps only tokens whose running sum ≤ p).
    exclude_crossing: bool,
    /// Returns the probabilities in sorted order instead of by token id.
    sorted_output: bool,
    /// Sorts ascending, so the nucleus is made of the least likely tokens.
    ascending: bool,
}

fn top_p(probs: &[f64], p: f64, v: Variant) -> Vec<f64> {
    // Most likely first; ties keep the lower id first, as the engine does.
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    if v.ascending {
        order.reverse();
    }
    let mut kept = 0;
    let mut cumulative = 0.0;
    for &i in &order {
        if v.exclude_crossing && cumulative + probs[i] > p {
            break;
        }
        cumulative += probs[i];
        kept += 1;
        if cumulative >= p {
            break;
        }
    }
    let nucleus: f64 = order[..kept].iter().map(|&i| probs[i]).sum();
    let norm = if v.no_renormalise || nucleus == 0.0 {
        1.0
    } else {
        nucleus
    };
    let mut out = vec![0.0; probs.len()];
    for &i in &order[..kept] {
        out[i] = probs[i] / norm;
    }
    if v.sorted_output {
        let ranked: Vec<f64> = order.iter().map(|&i| out[i]).collect();
        return ranked;
    }
    out
}

/// True when some running sum of the sorted probabilities is within `margin` of `p`: such a
/// case would hinge on float rounding, so the generator avoids it.
fn near_a_boundary(probs: &[f64], p: f64, margin: f64) -> bool {
    let mut sorted = probs.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let mut cumulative = 0.0;
    sorted.iter().any(|x| {
        cumulative += x;
        (cumulative - p).abs() < margin
    })
}

impl Grader for TopP {
    fn id(&self) -> &'static str {
        "top-p"
    }

    fn kind(&self) -> Kind {
        Kind::Python {
            function: "top_p_filter".into(),
        }
    }

    fn cases(&self) -> Vec<Case> {
        // The worked example of the lesson, then p = 1 (keep everything) and a p below the
        // largest probability (keep only the argmax).
        let mut cases = vec![
            Case {
                name: "the lesson's example".into(),
                args: vec![json!([0.5, 0.3, 0.2]), json!(0.7)],
            },
            Case {
                name: "p = 1 keeps every token".into(),
                args: vec![json!([0.1, 0.6, 0.3]), json!(1.0)],
            },
            Case {
                name: "a small p keeps only the most likely token".into(),
                args: vec![json!([0.15, 0.25, 0.4, 0.2]), json!(0.3)],
            },
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(0xe1_70b);
        let mut i = 0;
        while cases.len() < 9 {
            let vocab = rng.random_range(4..=10);
            let weights: Vec<u32> = (0..vocab).map(|_| rng.random_range(1..=40)).collect();
            let total: u32 = weights.iter().sum();
            let probs: Vec<f64> = weights
                .iter()
                .map(|&w| (w as f64 / total as f64 * 1e4).round() / 1e4)
                .collect();
            let p = f64::from(rng.random_range(30..=95)) / 100.0;
            if near_a_boundary(&probs, p, 1e-3) {
                continue;
            }
            i += 1;
            cases.push(Case {
                name: format!("random #{i} ({vocab} tokens, p = {p})"),
                args: vec![json!(probs), json!(p)],
            });
        }
        cases
    }

    fn expected(&self, case: &Case) -> Result<Value> {
        let probs: Vec<f64> = arg(case, 0)?;
        let p: f64 = arg(case, 1)?;
        Ok(json!(top_p(&probs, p, Variant::default())))
    }

    fn tolerance(&self) -> Tolerance {
        Tolerance {
            abs: 1e-6,
            rel: 1e-6,
        }
    }

    fn hint(&self, case: &Case, got: &Value) -> Option<String> {
        let probs: Vec<f64> = arg(case, 0).ok()?;
        let p: f64 = arg(case, 1).ok()?;
        let base = Variant::default();
        let mistakes = [
            (
                Variant {
                    no_renormalise: true,
                    ..base
                },
                "the kept probabilities must be renormalised: divide each by their sum so the result sums to 1",
            ),
            (
                Variant {
                    exclude_crossing: true,
                    ..base
                },
                "keep the token that makes the running sum reach p: the nucleus is the smallest set whose mass is at least p, so it always holds at least one token",
            ),
            (
                Variant {
                    sorted_output: true,
                    ..base
                },
                "return the probabilities in the original token order (index i is token i), not in sorted order",
            ),
            (
                Variant {
                    ascending: true,
                    ..base
                },
                "sort from the most likely token down (sorted(..., reverse=True)): the nucleus is made of the most likely tokens",
            ),
        ];
        let tol = self.tolerance();
        mistakes
            .iter()
            .find(|(v, _)| matches(got, &json!(top_p(&probs, p, *v)), tol))
            .map(|(_, hint)| hint.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{SamplingConfig, distribution};

    #[test]
    fn the_worked_example_by_hand() {
        // 0.5 < 0.7, 0.5 + 0.3 = 0.8 ≥ 0.7: keep two, renormalise by 0.8.
        let got = top_p(&[0.5, 0.3, 0.2], 0.7, Variant::default());
        let want = [0.625, 0.375, 0.0];
        assert!(got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-12));
    }

    #[test]
    fn the_reference_agrees_with_the_engines_sampler() {
        // One definition of top-p: the engine's `distribution` at temperature 1 on ln(probs)
        // keeps the same tokens with the same renormalised probabilities.
        for case in TopP.cases() {
            let probs: Vec<f64> = arg(&case, 0).unwrap();
            let p: f64 = arg(&case, 1).unwrap();
            let logits: Vec<f32> = probs.iter().map(|x| x.ln() as f32).collect();
            let cfg = SamplingConfig {
                top_p: Some(p as f32),
                ..SamplingConfig::default()
            };
            let engine = distribution(&logits, &cfg);
            let reference = top_p(&probs, p, Variant::default());
            for (e, r) in engine.iter().zip(&reference) {
                assert!(
                    (f64::from(*e) - r).abs() < 1e-5,
                    "{}: {engine:?} vs {reference:?}",
                    case.name
                );
            }
        }
    }

    #[test]
    fn each_classic_mistake_gets_its_hint() {
        let case = &TopP.cases()[0];
        let probs: Vec<f64> = arg(case, 0).unwrap();
        let hint = |v: Variant| TopP.hint(case, &json!(top_p(&probs, 0.7, v))).unwrap();
        assert!(
            hint(Variant {
                no_renormalise: true,
                ..Variant::default()
            })
            .contains("renormalised")
        );
        assert!(
            hint(Variant {
                exclude_crossing: true,
                ..Variant::default()
            })
            .contains("at least p")
        );
        assert!(
            hint(Variant {
                ascending: true,
                ..Variant::default()
            })
            .contains("most likely")
        );
    }
}
