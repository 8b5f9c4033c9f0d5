//! Exercise of lesson C2, Positions: rotate a vector with RoPE, checked against the engine's
//! own `model::position::rope`, the function the GPT's `position = "rope"` runs on tensors.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{Case, Grader, Kind, arg, matches};
use crate::Result;
use crate::model::position::{self, BASE};

/// `rope(x, pos)`: `x` a list of an even number of floats, `pos` a position.
pub struct Rope;

#[derive(Clone, Copy)]
enum Mistake {
    /// Pairs `(x_i, x_{i + d/2})` (GPT-NeoX's layout) instead of neighbours.
    HalfSplit,
    /// `θ_i = BASE^(-i/d)` instead of `BASE^(-2i/d)`.
    FrequencyExponent,
    /// Rotation the other way (`-sin` in the second row).
    Clockwise,
    /// Angle `pos` for every pair, no frequencies.
    NoFrequencies,
}

fn wrong(x: &[f64], pos: usize, mistake: Mistake) -> Vec<f64> {
    let d = x.len();
    let half = d / 2;
    let mut out = x.to_vec();
    for i in 0..half {
        let theta = match mistake {
            Mistake::FrequencyExponent => BASE.powf(-(i as f64) / d as f64),
            Mistake::NoFrequencies => 1.0,
            _ => BASE.powf(-2.0 * i as f64 / d as f64),
        };
        let (sin, cos) = (pos as f64 * theta).sin_cos();
        let (ia, ib) = match mistake {
            Mistake::HalfSplit => (i, i + half),
            _ => (2 * i, 2 * i + 1),
        };
        let (a, b) = (x[ia], x[ib]);
        let sin = if matches!(mistake, Mistake::Clockwise) {
            -sin
        } else {
            sin
        };
        out[ia] = a * cos - b * sin;
        out[ib] = a * sin + b * cos;
    }
    out
}

impl Grader for Rope {
    fn id(&self) -> &'static str {
        "rope"
    }

    fn kind(&self) -> Kind {
        Kind::Python {
            function: "rope".into(),
        }
    }

    fn cases(&self) -> Vec<Case> {
        let mut cases = vec![
            Case {
                name: "worked example: (1, 0) at position 1".into(),
                args: vec![json!([1.0, 0.0]), json!(1)],
            },
            Case {
                name: "position 0 changes nothing".into(),
                args: vec![json!([0.5, -1.0, 2.0, 0.25]), json!(0)],
            },
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(0xc2_7e);
        for (i, pos) in [3usize, 17, 100, 1000].into_iter().enumerate() {
            let d = 2 * rng.random_range(2..=4);
            let x: Vec<f64> = (0..d)
                .map(|_| rng.random_range(-200..=200) as f64 / 100.0)
                .collect();
            cases.push(Case {
                name: format!("random #{} (d = {d}, position {pos})", i + 1),
                args: vec![json!(x), json!(pos)],
            });
        }
        cases
    }

    fn expected(&self, case: &Case) -> Result<Value> {
        let x: Vec<f64> = arg(case, 0)?;
        let pos: usize = arg(case, 1)?;
        Ok(json!(position::rope(&x, pos)))
    }

    fn hint(&self, case: &Case, got: &Value) -> Option<String> {
        let x: Vec<f64> = arg(case, 0).ok()?;
        let pos: usize = arg(case, 1).ok()?;
        let hints = [
            (
                Mistake::HalfSplit,
                "you paired x[i] with x[i + d/2] (the GPT-NeoX layout); this exercise follows the RoFormer paper: pair neighbours x[2i] and x[2i+1]",
            ),
            (
                Mistake::FrequencyExponent,
                "the frequency of pair i is 10000 ** (-2 * i / d), with 2i in the exponent",
            ),
            (
                Mistake::Clockwise,
                "you rotated the wrong way: the new pair is (a cos - b sin, a sin + b cos)",
            ),
            (
                Mistake::NoFrequencies,
                "every pair turns at its own speed: the angle of pair i is pos * 10000 ** (-2 * i / d), not pos",
            ),
        ];
        let tol = self.tolerance();
        hints
            .iter()
            .find(|(m, _)| matches(got, &json!(wrong(&x, pos, *m)), tol))
            .map(|(_, h)| h.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grade::{Outcome, grade};

    fn outcomes(f: impl Fn(&[f64], usize) -> Vec<f64>) -> Vec<Outcome> {
        Rope.cases()
            .iter()
            .map(|c| {
                let x: Vec<f64> = arg(c, 0).unwrap();
                let pos: usize = arg(c, 1).unwrap();
                Outcome::Returned(json!(f(&x, pos)))
            })
            .collect()
    }

    #[test]
    fn worked_example_is_one_radian() {
        let want = json!([1f64.cos(), 1f64.sin()]);
        assert_eq!(Rope.expected(&Rope.cases()[0]).unwrap(), want);
    }

    #[test]
    fn reference_passes_and_mistakes_get_their_hints() {
        let v = grade("rope", &outcomes(position::rope)).unwrap();
        assert!(v.passed, "{v:?}");
        for (m, needle) in [
            (Mistake::HalfSplit, "NeoX"),
            (Mistake::FrequencyExponent, "2 * i"),
            (Mistake::Clockwise, "wrong way"),
            (Mistake::NoFrequencies, "own speed"),
        ] {
            let v = grade("rope", &outcomes(|x, p| wrong(x, p, m))).unwrap();
            assert!(!v.passed);
            let hint = v.failure.unwrap().hint.unwrap_or_default();
            assert!(hint.contains(needle), "{hint}");
        }
    }
}
