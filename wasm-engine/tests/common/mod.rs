//! Test support shared by the engine's test files.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use engine::model::gpt::{Config, Gpt};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Sets every variable of `varmap` (in name order) to seeded uniform values in
/// (-half_width, half_width), wider than the usual init so that attention and GELU are far
/// from linear; returns the variables by name.
pub fn seed_weights(
    varmap: &VarMap,
    seed: u64,
    half_width: f64,
    dtype: DType,
) -> Vec<(String, Var)> {
    let mut vars: Vec<(String, Var)> = varmap.data().lock().unwrap().clone().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for (_, var) in &vars {
        let values: Vec<f64> = (0..var.elem_count())
            .map(|_| rng.random_range(-half_width..half_width))
            .collect();
        let t = Tensor::from_vec(values, var.shape(), &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        var.set(&t).unwrap();
    }
    vars
}

/// Checks autograd against central finite differences, `(L(w + ε) − L(w − ε)) / 2ε`, on three
/// entries (first, middle, last) of every variable; `loss` recomputes the scalar loss of an
/// f64 model from its current weights. Returns how many entries were checked.
#[allow(dead_code)] // each test binary compiles this module; not all of them check gradients
pub fn check_gradients(vars: &[(String, Var)], loss: impl Fn() -> Tensor) -> usize {
    let grads = loss().backward().unwrap();
    let value = || loss().to_scalar::<f64>().unwrap();
    let eps = 1e-6;
    let mut checked = 0;
    for (name, var) in vars {
        let grad = grads
            .get(var)
            .unwrap_or_else(|| panic!("{name} has no gradient"))
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let original = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        for &i in &[0, original.len() / 2, original.len() - 1] {
            let nudged = |delta: f64| {
                let mut values = original.clone();
                values[i] += delta;
                var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                value()
            };
            let numeric = (nudged(eps) - nudged(-eps)) / (2.0 * eps);
            var.set(&Tensor::from_vec(original.clone(), var.shape(), &Device::Cpu).unwrap())
                .unwrap();
            let error = (numeric - grad[i]).abs();
            assert!(
                error < 1e-6 + 1e-4 * numeric.abs(),
                "{name}[{i}]: autograd {} vs finite difference {numeric}",
                grad[i]
            );
            checked += 1;
        }
    }
    checked
}

/// A model whose every parameter is drawn from `seed_weights` (seed 7, scale 0.5: far from
/// the usual 0.02, so that attention and GELU are far from linear and tests see their shape).
#[allow(dead_code)] // each test binary compiles this module; not all of them build models
pub fn seeded_model(cfg: &Config, dtype: DType) -> (Gpt, Vec<(String, Var)>) {
    let varmap = VarMap::new();
    let model = Gpt::new(cfg, VarBuilder::from_varmap(&varmap, dtype, &Device::Cpu)).unwrap();
    let vars = seed_weights(&varmap, 7, 0.5, dtype);
    (model, vars)
}

/// Token ids as a `(b, t)` tensor.
#[allow(dead_code)]
pub fn ids(values: &[u32], b: usize, t: usize) -> Tensor {
    Tensor::from_vec(values.to_vec(), (b, t), &Device::Cpu).unwrap()
}
