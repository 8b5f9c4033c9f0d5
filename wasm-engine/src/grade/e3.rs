//! Exercise of lesson E3, quantization: symmetric int8 quantize then dequantize a row of
//! weights, and report the largest error the round trip made. The reference is the engine's
//! own [`crate::quant::quantize_symmetric_i8_clipped`], the code the lesson's widget runs.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{Case, Grader, Kind, Tolerance, arg, matches};
use crate::Result;
use crate::quant::{dequantize_symmetric_i8, quantize_symmetric_i8_clipped};

/// `int8_roundtrip(xs, clip)`: `s = clip / 127` (`clip = max|x|` when `None`), `q = round(x / s)`
/// clamped to `[-127, 127]`, returns `[[s q for each x], max |x - s q|]`.
pub struct Int8Roundtrip;

/// The range a case quantizes over: `clip`, or the largest magnitude.
fn range(xs: &[f64], clip: Option<f64>) -> f64 {
    clip.unwrap_or_else(|| xs.iter().fold(0.0, |m, x| m.max(x.abs())))
}

fn answer(xs: &[f64], deq: &[f64]) -> Value {
    let err = xs
        .iter()
        .zip(deq)
        .map(|(x, d)| (x - d).abs())
        .fold(0.0, f64::max);
    json!([deq, err])
}

/// The reference: the engine's f32 code, the error measured against the f64 inputs.
fn reference(xs: &[f64], clip: Option<f64>) -> Value {
    let xs32: Vec<f32> = xs.iter().map(|&x| x as f32).collect();
    let (q, s) = quantize_symmetric_i8_clipped(&xs32, range(xs, clip) as f32);
    let deq: Vec<f64> = dequantize_symmetric_i8(&q, s)
        .iter()
        .map(|&d| f64::from(d))
        .collect();
    answer(xs, &deq)
}

/// Classic mistakes, computed in f64 as a student's Python would.
#[derive(Clone, Copy, Default)]
struct Mistake {
    /// `s = max / 128` (the int8 type's 128 negatives), clamped to `[-128, 127]`.
    by_128: bool,
    /// No clamp: values beyond the clip range get codes past ±127.
    no_clamp: bool,
    /// `int(x / s)`, which truncates toward zero.
    truncate: bool,
    /// The mean absolute error instead of the max.
    mean_error: bool,
}

fn with_mistake(xs: &[f64], clip: Option<f64>, m: Mistake) -> Value {
    let r = range(xs, clip);
    let levels = if m.by_128 { 128.0 } else { 127.0 };
    let s = if r > 0.0 { r / levels } else { 1.0 };
    let lo = if m.by_128 { -128.0 } else { -127.0 };
    let deq: Vec<f64> = xs
        .iter()
        .map(|x| {
            let q = if m.truncate {
                (x / s).trunc()
            } else {
                (x / s).round()
            };
            let q = if m.no_clamp { q } else { q.clamp(lo, 127.0) };
            q * s
        })
        .collect();
    if m.mean_error {
        let mean = xs.iter().zip(&deq).map(|(x, d)| (x - d).abs()).sum::<f64>() / xs.len() as f64;
        json!([deq, mean])
    } else {
        answer(xs, &deq)
    }
}

fn case(name: &str, xs: Vec<f64>, clip: Option<f64>) -> Case {
    Case {
        name: name.into(),
        args: vec![json!(xs), json!(clip)],
    }
}

impl Grader for Int8Roundtrip {
    fn id(&self) -> &'static str {
        "int8-roundtrip"
    }

    fn kind(&self) -> Kind {
        Kind::Python {
            function: "int8_roundtrip".into(),
        }
    }

    fn cases(&self) -> Vec<Case> {
        let mut cases = vec![
            case(
                "a row of weights",
                vec![0.31, -1.27, 0.052, 2.18, -0.66, 0.9],
                None,
            ),
            case("all zeros (any scale works)", vec![0.0; 5], None),
            case(
                "one outlier takes the whole range",
                vec![0.012, -0.031, 0.027, -0.008, 0.043, 8.6],
                None,
            ),
            case(
                "negative values only",
                vec![-0.25, -1.9, -0.73, -0.044, -1.31],
                None,
            ),
            case(
                "a calibrated clip of 1.0: larger values saturate",
                vec![0.4, -0.2, 1.43, -2.3, 0.05, 0.9],
                Some(1.0),
            ),
            case("a single value", vec![-3.7], None),
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(0xe3_18);
        for i in 0..4 {
            let n = rng.random_range(8..=16);
            let xs: Vec<f64> = (0..n)
                .map(|_| f64::from(rng.random_range(-20_000..=20_000)) / 10_000.0)
                .collect();
            // The last one is clipped at 80% of its range.
            let clip = (i == 3).then(|| (range(&xs, None) * 0.8 * 1e4).round() / 1e4);
            cases.push(case(
                &format!("random row #{} ({n} values)", i + 1),
                xs,
                clip,
            ));
        }
        cases
    }

    fn expected(&self, case: &Case) -> Result<Value> {
        let (xs, clip): (Vec<f64>, Option<f64>) = (arg(case, 0)?, arg(case, 1)?);
        Ok(reference(&xs, clip))
    }

    fn tolerance(&self) -> Tolerance {
        // The reference computes in f32 like the engine; students in f64.
        Tolerance {
            abs: 1e-5,
            rel: 1e-5,
        }
    }

    fn hint(&self, case: &Case, got: &Value) -> Option<String> {
        let (xs, clip): (Vec<f64>, Option<f64>) = (arg(case, 0).ok()?, arg(case, 1).ok()?);
        let base = Mistake::default();
        let mistakes = [
            (
                Mistake {
                    by_128: true,
                    ..base
                },
                "symmetric int8 uses 127 levels each side: s = max|x| / 127, not / 128, and codes in [-127, 127] (dropping -128 keeps the range symmetric)",
            ),
            (
                Mistake {
                    by_128: true,
                    no_clamp: true,
                    ..base
                },
                "symmetric int8 uses 127 levels each side: s = max|x| / 127, not / 128",
            ),
            (
                Mistake {
                    no_clamp: true,
                    ..base
                },
                "clamp the codes to [-127, 127]: with a clip, values beyond it must saturate at ±127 (an int8 cannot hold more)",
            ),
            (
                Mistake {
                    truncate: true,
                    ..base
                },
                "round to the nearest code (round(x / s)); int() truncates toward zero and doubles the worst error",
            ),
            (
                Mistake {
                    mean_error: true,
                    ..base
                },
                "the error to report is the largest |x - dequantized x|, not the mean",
            ),
        ];
        let tol = self.tolerance();
        mistakes
            .iter()
            .find(|(m, _)| matches(got, &with_mistake(&xs, clip, *m), tol))
            .map(|(_, hint)| hint.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grade::{Outcome, grade};

    fn args(case: &Case) -> (Vec<f64>, Option<f64>) {
        (arg(case, 0).unwrap(), arg(case, 1).unwrap())
    }

    #[test]
    fn the_reference_by_hand() {
        // max 2.54 → s = 0.02; 0.5 → 25, -1.0 → -50, 2.54 → 127; exact round trip.
        let got = reference(&[0.5, -1.0, 2.54], None);
        let deq: Vec<f64> = serde_json::from_value(got[0].clone()).unwrap();
        assert!(
            deq.iter()
                .zip([0.5, -1.0, 2.54])
                .all(|(a, b)| (a - b).abs() < 1e-6)
        );
        assert!(got[1].as_f64().unwrap() < 1e-6);
        // Clip 1.27 → s = 0.01: 3.0 saturates at 127 → 1.27, an error of 1.73.
        let got = reference(&[3.0, 0.004], Some(1.27));
        assert!((got[0][0].as_f64().unwrap() - 1.27).abs() < 1e-6);
        assert!((got[0][1].as_f64().unwrap()).abs() < 1e-9);
        assert!((got[1].as_f64().unwrap() - 1.73).abs() < 1e-6);
        assert_eq!(reference(&[0.0, 0.0], None), json!([[0.0, 0.0], 0.0]));
    }

    #[test]
    fn a_python_like_f64_answer_passes_and_no_case_sits_on_a_rounding_tie() {
        // Python computes in f64 and rounds ties to even; the cases must not depend on either.
        for case in Int8Roundtrip.cases() {
            let (xs, clip) = args(&case);
            let r = range(&xs, clip);
            if r > 0.0 {
                for x in &xs {
                    // Values past the clip saturate, wherever they round.
                    let code = (x / (r / 127.0)).abs();
                    assert!(
                        code > 127.0 || (code.fract() - 0.5).abs() > 1e-4,
                        "{}: {x} is near a tie",
                        case.name
                    );
                }
            }
        }
        let outcomes: Vec<Outcome> = Int8Roundtrip
            .cases()
            .iter()
            .map(|c| {
                let (xs, clip) = args(c);
                Outcome::Returned(with_mistake(&xs, clip, Mistake::default()))
            })
            .collect();
        let verdict = grade("int8-roundtrip", &outcomes).unwrap();
        assert!(verdict.passed, "{verdict:?}");
    }

    #[test]
    fn the_round_trip_error_is_at_most_half_a_step_within_the_range() {
        for case in Int8Roundtrip.cases() {
            let (xs, clip) = args(&case);
            if clip.is_none() {
                let r = range(&xs, None);
                let err = reference(&xs, None)[1].as_f64().unwrap();
                assert!(err <= r / 127.0 / 2.0 + 1e-6, "{}: {err}", case.name);
            }
        }
    }

    #[test]
    fn wrong_answers_fail_with_their_hints() {
        let run = |m: Mistake| {
            let outcomes: Vec<Outcome> = Int8Roundtrip
                .cases()
                .iter()
                .map(|c| {
                    let (xs, clip) = args(c);
                    Outcome::Returned(with_mistake(&xs, clip, m))
                })
                .collect();
            let verdict = grade("int8-roundtrip", &outcomes).unwrap();
            assert!(!verdict.passed);
            verdict.failure.unwrap()
        };
        let base = Mistake::default();
        let f = run(Mistake {
            by_128: true,
            ..base
        });
        assert_eq!(f.case, "a row of weights");
        assert!(f.hint.unwrap().contains("/ 127, not / 128"));
        let f = run(Mistake {
            no_clamp: true,
            ..base
        });
        assert!(f.case.contains("clip"), "{}", f.case);
        assert!(f.hint.unwrap().contains("clamp"));
        assert!(f.max_error.unwrap() > 1.0);
        assert!(
            run(Mistake {
                truncate: true,
                ..base
            })
            .hint
            .unwrap()
            .contains("truncates")
        );
        assert!(
            run(Mistake {
                mean_error: true,
                ..base
            })
            .hint
            .unwrap()
            .contains("not the mean")
        );
        // Only the dequantized values, no error: a shape mismatch, no hint.
        let outcomes: Vec<Outcome> = Int8Roundtrip
            .cases()
            .iter()
            .map(|c| Outcome::Returned(reference(&args(c).0, args(c).1)[0].clone()))
            .collect();
        let verdict = grade("int8-roundtrip", &outcomes).unwrap();
        assert!(!verdict.passed);
    }
}
