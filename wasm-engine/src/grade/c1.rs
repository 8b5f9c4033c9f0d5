//! Exercise of lesson C1, Attention: one head of scaled dot-product attention under any mask
//! (causal, padding, bidirectional, cross-attention, packed sequences), checked against the
//! engine's own attention (`model::attention`), the code every model of the engine runs.

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::d1::{AttnVariant, CORRECT, Matrix, Scale, masked_attention, random_matrix};
use super::{Case, Grader, Kind, arg, matches};
use crate::Result;
use crate::model::attention;

type Mask = Vec<Vec<bool>>;
/// A wrong mask or a wrong formula, and the hint for the answer it produces.
type Mistake<'a> = (&'a dyn Fn(usize, usize) -> bool, AttnVariant, &'a str);

/// `masked_attention(q, k, v, mask)`: `q` is `(T_q, d)`, `k` and `v` are `(T_k, d)`, and
/// `mask[i][j]` is true when query `i` may attend to key `j`.
pub struct MaskedAttention;

/// The engine's attention on f64 tensors.
fn engine_attention(q: &Matrix, k: &Matrix, v: &Matrix, mask: &Mask) -> Result<Matrix> {
    let dev = Device::Cpu;
    let tensor = |m: &Matrix| -> Result<Tensor> {
        let rows = m.len();
        let cols = m.first().map_or(0, Vec::len);
        Ok(Tensor::from_vec(m.concat(), (rows, cols), &dev)?)
    };
    let mask = attention::additive_mask(mask, DType::F64, &dev)?;
    let out = attention::scaled_dot_product(&tensor(q)?, &tensor(k)?, &tensor(v)?, Some(&mask))?;
    Ok(out.to_vec2::<f64>()?)
}

fn case(name: &str, rng: &mut ChaCha8Rng, t_q: usize, t_k: usize, mask: Mask) -> Case {
    let d = rng.random_range(2..=4);
    let q = random_matrix(rng, t_q, d);
    let k = random_matrix(rng, t_k, d);
    let v = random_matrix(rng, t_k, d);
    Case {
        name: format!("{name} (T_q = {t_q}, T_k = {t_k}, d = {d})"),
        args: vec![json!(q), json!(k), json!(v), json!(mask)],
    }
}

fn mask_of(t_q: usize, t_k: usize, allowed: impl Fn(usize, usize) -> bool) -> Mask {
    (0..t_q)
        .map(|i| (0..t_k).map(|j| allowed(i, j)).collect())
        .collect()
}

impl Grader for MaskedAttention {
    fn id(&self) -> &'static str {
        "masked-attention"
    }

    fn kind(&self) -> Kind {
        Kind::Python {
            function: "masked_attention".into(),
        }
    }

    fn cases(&self) -> Vec<Case> {
        let mut rng = ChaCha8Rng::seed_from_u64(0xc1_a7);
        let mut cases = vec![Case {
            name: "worked example: two keys, the second masked".into(),
            args: vec![
                json!([[1.0, 1.0]]),
                json!([[1.0, 0.0], [0.0, 2.0]]),
                json!([[1.0, 2.0], [3.0, 4.0]]),
                json!([[true, false]]),
            ],
        }];
        // Decoder self-attention: key j visible from query i when j <= i.
        cases.push(case("causal", &mut rng, 5, 5, mask_of(5, 5, |i, j| j <= i)));
        // Encoder self-attention: everything visible.
        cases.push(case(
            "bidirectional",
            &mut rng,
            4,
            4,
            mask_of(4, 4, |_, _| true),
        ));
        // A batch row padded to length 6 holds 4 real tokens: nobody looks at the padding.
        cases.push(case("padding", &mut rng, 6, 6, mask_of(6, 6, |_, j| j < 4)));
        // Decoder queries over encoder keys (cross-attention), with two padded keys.
        cases.push(case(
            "cross-attention",
            &mut rng,
            3,
            7,
            mask_of(3, 7, |_, j| j < 5),
        ));
        // Two documents packed into one row: causal inside each, nothing across.
        cases.push(case(
            "two packed sequences",
            &mut rng,
            6,
            6,
            mask_of(6, 6, |i, j| j <= i && (i < 3) == (j < 3)),
        ));
        // Sliding-window causal attention of width 2 (Longformer, Mistral).
        cases.push(case(
            "sliding window",
            &mut rng,
            6,
            6,
            mask_of(6, 6, |i, j| j <= i && i - j < 2),
        ));
        // One new token against a KV cache of 4: a single query sees every key.
        cases.push(case(
            "one query, cached keys",
            &mut rng,
            1,
            5,
            mask_of(1, 5, |_, _| true),
        ));
        cases
    }

    fn expected(&self, case: &Case) -> Result<Value> {
        let (q, k, v): (Matrix, Matrix, Matrix) = (arg(case, 0)?, arg(case, 1)?, arg(case, 2)?);
        let mask: Mask = arg(case, 3)?;
        Ok(json!(engine_attention(&q, &k, &v, &mask)?))
    }

    fn hint(&self, case: &Case, got: &Value) -> Option<String> {
        let (q, k, v): (Matrix, Matrix, Matrix) =
            (arg(case, 0).ok()?, arg(case, 1).ok()?, arg(case, 2).ok()?);
        let mask: Mask = arg(case, 3).ok()?;
        let given = |i: usize, j: usize| mask[i][j];
        let everything = |_: usize, _: usize| true;
        let causal = |i: usize, j: usize| j <= i;
        let inverted = |i: usize, j: usize| !mask[i][j];
        let mistakes: [Mistake; 7] = [
            (
                &everything,
                CORRECT,
                "your output ignores the mask: set the score of every (i, j) with mask[i][j] False to float('-inf') before the softmax",
            ),
            (
                &causal,
                CORRECT,
                "you applied a causal mask (j <= i) instead of the mask you were given: use mask[i][j], which may be padding, bidirectional or rectangular",
            ),
            (
                &inverted,
                CORRECT,
                "the mask is the wrong way round: mask[i][j] True means query i MAY attend to key j",
            ),
            (
                &given,
                AttnVariant {
                    mask_with_zero: true,
                    ..CORRECT
                },
                "masking with 0 is not masking: e^0 = 1 still gives the hidden key weight. Use float('-inf') so that e^-inf = 0",
            ),
            (
                &given,
                AttnVariant {
                    scale: Scale::None,
                    ..CORRECT
                },
                "scale the scores by 1/sqrt(d) (d = len(q[0])) before the softmax",
            ),
            (
                &given,
                AttnVariant {
                    scale: Scale::D,
                    ..CORRECT
                },
                "the scale is 1/sqrt(d), not 1/d",
            ),
            (
                &given,
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
            .find(|(allowed, var, _)| {
                matches(
                    got,
                    &json!(masked_attention(&q, &k, &v, allowed, *var)),
                    tol,
                )
            })
            .map(|(_, _, hint)| hint.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grade::{Outcome, grade};

    fn args(case: &Case) -> (Matrix, Matrix, Matrix, Mask) {
        (
            arg(case, 0).unwrap(),
            arg(case, 1).unwrap(),
            arg(case, 2).unwrap(),
            arg(case, 3).unwrap(),
        )
    }

    /// Runs a student-style answer, written as a plain loop, on every case.
    fn outcomes(answer: impl Fn(&Matrix, &Matrix, &Matrix, &Mask) -> Matrix) -> Vec<Outcome> {
        MaskedAttention
            .cases()
            .iter()
            .map(|c| {
                let (q, k, v, m) = args(c);
                Outcome::Returned(json!(answer(&q, &k, &v, &m)))
            })
            .collect()
    }

    #[test]
    fn engine_and_a_plain_loop_agree_on_every_case() {
        let verdict = grade(
            "masked-attention",
            &outcomes(|q, k, v, m| masked_attention(q, k, v, &|i, j| m[i][j], CORRECT)),
        )
        .unwrap();
        assert!(verdict.passed, "{verdict:?}");
        assert_eq!(verdict.cases_total, 8);
    }

    #[test]
    fn worked_example_by_hand() {
        // Only key 0 is visible, so the output is v_0 whatever the scores.
        let case = &MaskedAttention.cases()[0];
        assert_eq!(MaskedAttention.expected(case).unwrap(), json!([[1.0, 2.0]]));
        // With both keys visible: scores 1/√2 and 0, weights σ = e^{1/√2} / (e^{1/√2} + 1).
        let w = (0.5f64.sqrt()).exp() / ((0.5f64.sqrt()).exp() + 1.0);
        let out = engine_attention(
            &vec![vec![1.0, 0.0]],
            &vec![vec![1.0, 0.0], vec![0.0, 1.0]],
            &vec![vec![1.0, 2.0], vec![3.0, 4.0]],
            &vec![vec![true, true]],
        )
        .unwrap();
        let want = [w + 3.0 * (1.0 - w), 2.0 * w + 4.0 * (1.0 - w)];
        assert!((out[0][0] - want[0]).abs() < 1e-12 && (out[0][1] - want[1]).abs() < 1e-12);
    }

    #[test]
    fn classic_mistakes_get_their_hints() {
        let hint_of = |answer: &dyn Fn(&Matrix, &Matrix, &Matrix, &Mask) -> Matrix| {
            let verdict = grade("masked-attention", &outcomes(answer)).unwrap();
            assert!(!verdict.passed);
            verdict.failure.unwrap().hint.unwrap_or_default()
        };
        let ignores = hint_of(&|q, k, v, _| masked_attention(q, k, v, &|_, _| true, CORRECT));
        assert!(ignores.contains("ignores the mask"), "{ignores}");
        let causal = hint_of(&|q, k, v, _| masked_attention(q, k, v, &|i, j| j <= i, CORRECT));
        assert!(causal.contains("causal mask"), "{causal}");
        let zero = hint_of(&|q, k, v, m| {
            let var = AttnVariant {
                mask_with_zero: true,
                ..CORRECT
            };
            masked_attention(q, k, v, &|i, j| m[i][j], var)
        });
        assert!(zero.contains("e^0"), "{zero}");
    }

    #[test]
    fn a_row_with_no_visible_key_is_an_error() {
        let err =
            attention::additive_mask(&[vec![false, false]], DType::F64, &Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("no key"), "{err}");
    }
}
