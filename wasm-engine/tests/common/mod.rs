//! Test support shared by the engine's test files.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
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
