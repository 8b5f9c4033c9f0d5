//! Exercise of lesson C3, The transformer block: LayerNorm forward over the rows of a matrix,
//! checked against the engine's own `model::gpt::layer_norm`, the function every GPT block of
//! the engine runs (its f32 result agrees with candle-nn's fused `ops::layer_norm`; a test
//! below checks it).

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::d1::{Matrix, random_matrix};
use super::{Case, Grader, Kind, arg, matches};
use crate::Result;
use crate::model::gpt;

/// `layernorm(x, gamma, beta, eps)`: `x` is a list of rows of `d` floats, `gamma` and `beta`
/// lists of `d` floats; each row is normalised on its own.
pub struct LayerNormForward;

/// The engine's LayerNorm on f64 tensors.
fn engine_layer_norm(x: &Matrix, gamma: &[f64], beta: &[f64], eps: f64) -> Result<Matrix> {
    let dev = Device::Cpu;
    let rows = x.len();
    let d = gamma.len();
    let xs = Tensor::from_vec(x.concat(), (rows, d), &dev)?;
    let gamma = Tensor::new(gamma, &dev)?;
    let beta = Tensor::new(beta, &dev)?;
    Ok(gpt::layer_norm(&xs, &gamma, Some(&beta), eps)?.to_vec2::<f64>()?)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mistake {
    /// Divides the squared deviations by d - 1 (`statistics.variance`).
    Unbiased,
    /// `(x - mean) / (sqrt(var) + eps)`.
    EpsOutside,
    /// `(x - mean) / sqrt(var)`.
    NoEps,
    /// Forgot `gamma`.
    NoGamma,
    /// Forgot `beta`.
    NoBeta,
    /// Returned the normalised rows without `gamma` and `beta`.
    NoAffine,
    /// Did not subtract the mean (that is RMSNorm).
    NoCentring,
    /// Normalised each column over the rows (that is BatchNorm).
    Columns,
}

/// LayerNorm as a plain loop, right (`None`) or with one classic mistake.
fn plain(x: &Matrix, gamma: &[f64], beta: &[f64], eps: f64, mistake: Option<Mistake>) -> Matrix {
    use Mistake::*;
    if mistake == Some(Columns) {
        let (rows, d) = (x.len(), gamma.len());
        let mut out = x.clone();
        for j in 0..d {
            let col: Vec<f64> = x.iter().map(|r| r[j]).collect();
            let mean = col.iter().sum::<f64>() / rows as f64;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / rows as f64;
            for (i, row) in out.iter_mut().enumerate() {
                row[j] = (x[i][j] - mean) / (var + eps).sqrt() * gamma[j] + beta[j];
            }
        }
        return out;
    }
    x.iter()
        .map(|row| {
            let d = row.len() as f64;
            let mean = if mistake == Some(NoCentring) {
                0.0
            } else {
                row.iter().sum::<f64>() / d
            };
            let n = if mistake == Some(Unbiased) {
                d - 1.0
            } else {
                d
            };
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            let denom = match mistake {
                Some(EpsOutside) => var.sqrt() + eps,
                Some(NoEps) => var.sqrt(),
                _ => (var + eps).sqrt(),
            };
            row.iter()
                .enumerate()
                .map(|(j, v)| {
                    let xhat = (v - mean) / denom;
                    let g = if matches!(mistake, Some(NoGamma | NoAffine)) {
                        1.0
                    } else {
                        gamma[j]
                    };
                    let b = if matches!(mistake, Some(NoBeta | NoAffine)) {
                        0.0
                    } else {
                        beta[j]
                    };
                    xhat * g + b
                })
                .collect()
        })
        .collect()
}

fn random_vec(rng: &mut ChaCha8Rng, d: usize, lo: i32, hi: i32) -> Vec<f64> {
    (0..d)
        .map(|_| rng.random_range(lo..=hi) as f64 / 100.0)
        .collect()
}

fn case(name: String, x: Matrix, gamma: Vec<f64>, beta: Vec<f64>, eps: f64) -> Case {
    Case {
        // The feedback shows floats to 4 decimals, so eps is named here.
        name: format!("{name}, eps = {eps:e}"),
        args: vec![json!(x), json!(gamma), json!(beta), json!(eps)],
    }
}

impl Grader for LayerNormForward {
    fn id(&self) -> &'static str {
        "layernorm"
    }

    fn kind(&self) -> Kind {
        Kind::Python {
            function: "layernorm".into(),
        }
    }

    fn cases(&self) -> Vec<Case> {
        let mut rng = ChaCha8Rng::seed_from_u64(0xc3_1a);
        let mut cases = vec![case(
            "worked example: one row [1, 2, 3, 4], gamma 1, beta 0".into(),
            vec![vec![1.0, 2.0, 3.0, 4.0]],
            vec![1.0; 4],
            vec![0.0; 4],
            1e-5,
        )];
        // Scale and shift that differ per feature.
        let d = 5;
        cases.push(case(
            format!("three rows, d = {d}, with gamma and beta"),
            random_matrix(&mut rng, 3, d),
            random_vec(&mut rng, d, 50, 200),
            random_vec(&mut rng, d, -100, 100),
            1e-5,
        ));
        // Rows far from zero: the mean must come off (RMSNorm would not remove it).
        let d = 6;
        let x = random_matrix(&mut rng, 2, d)
            .into_iter()
            .map(|r| r.into_iter().map(|v| v + 10.0).collect())
            .collect();
        cases.push(case(
            format!("rows around 10, d = {d}"),
            x,
            random_vec(&mut rng, d, 50, 200),
            random_vec(&mut rng, d, -100, 100),
            1e-5,
        ));
        // A small spread and a large eps: where eps sits is visible.
        let d = 4;
        let x = random_matrix(&mut rng, 2, d)
            .into_iter()
            .map(|r| r.into_iter().map(|v| v * 0.1).collect())
            .collect();
        cases.push(case(
            format!("small spread and a large eps, d = {d}"),
            x,
            random_vec(&mut rng, d, 50, 200),
            random_vec(&mut rng, d, -100, 100),
            0.1,
        ));
        // All equal: nothing to normalise, the answer is beta (eps keeps it finite).
        cases.push(case(
            "a constant row".into(),
            vec![vec![3.0; 3]],
            vec![2.0, -1.0, 0.5],
            vec![0.25, 0.5, -0.75],
            1e-5,
        ));
        // Two features: the unbiased variance is twice the biased one.
        cases.push(case(
            "d = 2".into(),
            vec![vec![1.0, -3.0], vec![0.5, 0.0]],
            vec![1.5, 0.5],
            vec![0.0, 1.0],
            1e-5,
        ));
        let d = 8;
        cases.push(case(
            format!("four rows, d = {d}"),
            random_matrix(&mut rng, 4, d),
            random_vec(&mut rng, d, 50, 200),
            random_vec(&mut rng, d, -100, 100),
            1e-3,
        ));
        cases
    }

    fn expected(&self, case: &Case) -> Result<Value> {
        let x: Matrix = arg(case, 0)?;
        let gamma: Vec<f64> = arg(case, 1)?;
        let beta: Vec<f64> = arg(case, 2)?;
        let eps: f64 = arg(case, 3)?;
        Ok(json!(engine_layer_norm(&x, &gamma, &beta, eps)?))
    }

    fn hint(&self, case: &Case, got: &Value) -> Option<String> {
        let x: Matrix = arg(case, 0).ok()?;
        let gamma: Vec<f64> = arg(case, 1).ok()?;
        let beta: Vec<f64> = arg(case, 2).ok()?;
        let eps: f64 = arg(case, 3).ok()?;
        use Mistake::*;
        let hints = [
            (
                Unbiased,
                "you divided by d - 1 (the unbiased variance, statistics.variance); LayerNorm uses the population variance: divide the sum of squared deviations by d",
            ),
            (
                EpsOutside,
                "eps goes inside the square root: divide by sqrt(var + eps), not sqrt(var) + eps",
            ),
            (
                NoEps,
                "you left out eps: divide by sqrt(var + eps), which also keeps a constant row finite",
            ),
            (
                NoGamma,
                "you forgot the scale: multiply each normalised value by gamma[j] before adding beta[j]",
            ),
            (
                NoBeta,
                "you forgot the shift: add beta[j] after multiplying by gamma[j]",
            ),
            (
                NoAffine,
                "the rows are normalised but not scaled and shifted: return x_hat * gamma + beta",
            ),
            (
                NoCentring,
                "you did not subtract the mean (that is RMSNorm); LayerNorm centres each row first and uses the variance around its mean",
            ),
            (
                Columns,
                "you normalised each column over the rows (that is BatchNorm); LayerNorm normalises each row over its own d features",
            ),
        ];
        let tol = self.tolerance();
        hints
            .iter()
            .find(|(m, _)| matches(got, &json!(plain(&x, &gamma, &beta, eps, Some(*m))), tol))
            .map(|(_, h)| h.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grade::{Outcome, grade};

    fn outcomes(mistake: Option<Mistake>) -> Vec<Outcome> {
        LayerNormForward
            .cases()
            .iter()
            .map(|c| {
                let x: Matrix = arg(c, 0).unwrap();
                let gamma: Vec<f64> = arg(c, 1).unwrap();
                let beta: Vec<f64> = arg(c, 2).unwrap();
                let eps: f64 = arg(c, 3).unwrap();
                Outcome::Returned(json!(plain(&x, &gamma, &beta, eps, mistake)))
            })
            .collect()
    }

    #[test]
    fn worked_example_by_hand() {
        // mean 2.5, variance 1.25: (x - 2.5) / sqrt(1.25 + 1e-5).
        let got = LayerNormForward
            .expected(&LayerNormForward.cases()[0])
            .unwrap();
        let s = (1.25f64 + 1e-5).sqrt();
        let want = json!([[-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s]]);
        assert!(
            matches(
                &got,
                &want,
                super::super::Tolerance {
                    abs: 1e-12,
                    rel: 0.0
                }
            ),
            "{got}"
        );
        // About [-1.3416, -0.4472, 0.4472, 1.3416].
        assert!((got[0][0].as_f64().unwrap() + 1.3416).abs() < 1e-4);
    }

    #[test]
    fn a_plain_loop_passes_every_case() {
        let v = grade("layernorm", &outcomes(None)).unwrap();
        assert!(v.passed, "{v:?}");
        assert_eq!(v.cases_total, 7);
    }

    #[test]
    fn classic_mistakes_fail_with_their_hints() {
        for (m, needle) in [
            (Mistake::Unbiased, "d - 1"),
            (Mistake::EpsOutside, "inside the square root"),
            (Mistake::NoEps, "left out eps"),
            (Mistake::NoGamma, "forgot the scale"),
            (Mistake::NoBeta, "forgot the shift"),
            (Mistake::NoAffine, "not scaled and shifted"),
            (Mistake::NoCentring, "RMSNorm"),
            (Mistake::Columns, "BatchNorm"),
        ] {
            let v = grade("layernorm", &outcomes(Some(m))).unwrap();
            assert!(!v.passed, "{m:?} passed");
            let hint = v.failure.unwrap().hint.unwrap_or_default();
            assert!(hint.contains(needle), "{m:?}: {hint}");
        }
    }

    #[test]
    fn a_wrong_shape_is_explained() {
        let mut out = outcomes(None);
        out[1] = Outcome::Returned(json!([1.0, 2.0]));
        let v = grade("layernorm", &out).unwrap();
        let f = v.failure.unwrap();
        assert_eq!(v.cases_passed, 6);
        assert!(
            f.reason.contains("length") || f.reason.contains("type"),
            "{f:?}"
        );
    }

    /// The engine's LayerNorm (primitive ops, with a backward pass) and candle-nn's fused
    /// kernel agree in f32, and both match the f64 reference closely.
    #[test]
    fn engine_layer_norm_matches_candle_nn_fused_op() {
        let dev = Device::Cpu;
        for case in LayerNormForward.cases() {
            let x: Matrix = arg(&case, 0).unwrap();
            let gamma: Vec<f64> = arg(&case, 1).unwrap();
            let beta: Vec<f64> = arg(&case, 2).unwrap();
            let eps: f64 = arg(&case, 3).unwrap();
            let f32s = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
            let xs = Tensor::from_vec(f32s(&x.concat()), (x.len(), gamma.len()), &dev).unwrap();
            let g = Tensor::new(f32s(&gamma), &dev).unwrap();
            let b = Tensor::new(f32s(&beta), &dev).unwrap();
            let ours = gpt::layer_norm(&xs, &g, Some(&b), eps).unwrap();
            let fused = candle_nn::ops::layer_norm(&xs, &g, &b, eps as f32).unwrap();
            let diff = (ours - fused)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-4, "{}: {diff}", case.name);
        }
    }
}
