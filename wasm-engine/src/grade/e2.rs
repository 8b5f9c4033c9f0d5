//! Exercise of lesson E2, the KV cache: append the new token's key and value to the cache,
//! then one step of attention for the new query over every cached position.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{Case, Grader, Kind, arg, matches};
use crate::Result;

type Matrix = Vec<Vec<f64>>;

/// `kv_step(K, V, q, k, v)`: returns `[out, K, V]` with `k`, `v` appended to the caches and
/// `out = softmax(q · K_jᵀ / √d) V` over all cached positions, the new one included.
pub struct KvStep;

#[derive(Clone, Copy, Default)]
struct Variant {
    /// Attends over the old cache only: the new token does not see itself.
    attend_before_append: bool,
    /// No 1/√d.
    unscaled: bool,
    /// Attends to the new token only (the cache is appended but not used).
    ignore_cache: bool,
}

fn kv_step(
    k_cache: &Matrix,
    v_cache: &Matrix,
    q: &[f64],
    k: &[f64],
    v: &[f64],
    var: Variant,
) -> Value {
    let mut keys = k_cache.clone();
    let mut values = v_cache.clone();
    keys.push(k.to_vec());
    values.push(v.to_vec());
    let (att_k, att_v): (&[Vec<f64>], &[Vec<f64>]) = if var.attend_before_append {
        (&keys[..keys.len() - 1], &values[..values.len() - 1])
    } else if var.ignore_cache {
        (&keys[keys.len() - 1..], &values[values.len() - 1..])
    } else {
        (&keys, &values)
    };
    let d = q.len() as f64;
    let scale = if var.unscaled { 1.0 } else { 1.0 / d.sqrt() };
    let scores: Vec<f64> = att_k
        .iter()
        .map(|kj| q.iter().zip(kj).map(|(a, b)| a * b).sum::<f64>() * scale)
        .collect();
    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
    let z: f64 = e.iter().sum();
    let out: Vec<f64> = (0..v.len())
        .map(|c| e.iter().zip(att_v).map(|(w, vj)| w / z * vj[c]).sum())
        .collect();
    json!([out, keys, values])
}

fn row(rng: &mut ChaCha8Rng, d: usize) -> Vec<f64> {
    (0..d)
        .map(|_| f64::from(rng.random_range(-200..=200)) / 100.0)
        .collect()
}

impl Grader for KvStep {
    fn id(&self) -> &'static str {
        "kv-step"
    }

    fn kind(&self) -> Kind {
        Kind::Python {
            function: "kv_step".into(),
        }
    }

    fn cases(&self) -> Vec<Case> {
        // The first token: an empty cache, so the output is its own value.
        let mut cases = vec![Case {
            name: "the first token (empty cache)".into(),
            args: vec![
                json!([]),
                json!([]),
                json!([1.0, 0.0]),
                json!([0.5, 0.5]),
                json!([2.0, -1.0]),
            ],
        }];
        let mut rng = ChaCha8Rng::seed_from_u64(0xe2_ca);
        for i in 0..6 {
            let t = rng.random_range(1..=6);
            let d = rng.random_range(2..=4);
            let kc: Matrix = (0..t).map(|_| row(&mut rng, d)).collect();
            let vc: Matrix = (0..t).map(|_| row(&mut rng, d)).collect();
            let (q, k, v) = (row(&mut rng, d), row(&mut rng, d), row(&mut rng, d));
            cases.push(Case {
                name: format!("random #{} ({t} cached, d = {d})", i + 1),
                args: vec![json!(kc), json!(vc), json!(q), json!(k), json!(v)],
            });
        }
        cases
    }

    fn expected(&self, case: &Case) -> Result<Value> {
        let (kc, vc): (Matrix, Matrix) = (arg(case, 0)?, arg(case, 1)?);
        let (q, k, v): (Vec<f64>, Vec<f64>, Vec<f64>) =
            (arg(case, 2)?, arg(case, 3)?, arg(case, 4)?);
        Ok(kv_step(&kc, &vc, &q, &k, &v, Variant::default()))
    }

    fn hint(&self, case: &Case, got: &Value) -> Option<String> {
        let (kc, vc): (Matrix, Matrix) = (arg(case, 0).ok()?, arg(case, 1).ok()?);
        let (q, k, v): (Vec<f64>, Vec<f64>, Vec<f64>) =
            (arg(case, 2).ok()?, arg(case, 3).ok()?, arg(case, 4).ok()?);
        let base = Variant::default();
        let mut mistakes = vec![
            (
                Variant {
                    unscaled: true,
                    ..base
                },
                "scale the scores by 1/sqrt(d) (d = len(q)) before the softmax, as in training",
            ),
            (
                Variant {
                    ignore_cache: true,
                    ..base
                },
                "the new query must attend to every cached key, not only to its own: use the whole cache after appending",
            ),
        ];
        if !kc.is_empty() {
            mistakes.push((
                Variant { attend_before_append: true, ..base },
                "append k and v to the cache *before* attending: the causal mask lets a token see itself",
            ));
        }
        let tol = self.tolerance();
        mistakes
            .iter()
            .find(|(var, _)| matches(got, &kv_step(&kc, &vc, &q, &k, &v, *var), tol))
            .map(|(_, hint)| hint.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_token_sees_only_itself() {
        let got = kv_step(
            &vec![],
            &vec![],
            &[1.0, 0.0],
            &[0.5, 0.5],
            &[2.0, -1.0],
            Variant::default(),
        );
        assert_eq!(got, json!([[2.0, -1.0], [[0.5, 0.5]], [[2.0, -1.0]]]));
    }

    #[test]
    fn a_cached_step_equals_the_last_row_of_full_causal_attention() {
        // What makes the cache correct: the last row of causal attention over all positions
        // only needs the last query and every key and value.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (t, d) = (5, 3);
        let qs: Matrix = (0..t).map(|_| row(&mut rng, d)).collect();
        let ks: Matrix = (0..t).map(|_| row(&mut rng, d)).collect();
        let vs: Matrix = (0..t).map(|_| row(&mut rng, d)).collect();
        let got = kv_step(
            &ks[..t - 1].to_vec(),
            &vs[..t - 1].to_vec(),
            &qs[t - 1],
            &ks[t - 1],
            &vs[t - 1],
            Variant::default(),
        );
        // Row t-1 of softmax(Q Kᵀ/√d + causal mask) V, by hand: no key is masked for the last row.
        let scores: Vec<f64> = ks
            .iter()
            .map(|k| qs[t - 1].iter().zip(k).map(|(a, b)| a * b).sum::<f64>() / (d as f64).sqrt())
            .collect();
        let z: f64 = scores.iter().map(|s| s.exp()).sum();
        let want: Vec<f64> = (0..d)
            .map(|c| {
                scores
                    .iter()
                    .zip(&vs)
                    .map(|(s, v)| s.exp() / z * v[c])
                    .sum()
            })
            .collect();
        let out: Vec<f64> = serde_json::from_value(got[0].clone()).unwrap();
        assert!(out.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-12));
    }

    #[test]
    fn classic_mistakes_get_their_hints() {
        let case = &KvStep.cases()[1];
        let (kc, vc): (Matrix, Matrix) = (arg(case, 0).unwrap(), arg(case, 1).unwrap());
        let (q, k, v): (Vec<f64>, Vec<f64>, Vec<f64>) = (
            arg(case, 2).unwrap(),
            arg(case, 3).unwrap(),
            arg(case, 4).unwrap(),
        );
        let hint = |var| {
            KvStep
                .hint(case, &kv_step(&kc, &vc, &q, &k, &v, var))
                .unwrap()
        };
        assert!(
            hint(Variant {
                attend_before_append: true,
                ..Variant::default()
            })
            .contains("before")
        );
        assert!(
            hint(Variant {
                unscaled: true,
                ..Variant::default()
            })
            .contains("sqrt")
        );
    }
}
