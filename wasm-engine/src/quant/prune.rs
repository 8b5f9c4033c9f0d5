//! Unstructured magnitude pruning (Han et al., "Learning both Weights and Connections for
//! Efficient Neural Networks", 2015): zero the weights of smallest absolute value.
//!
//! Only the linear layers of the blocks are pruned (`c_attn`, `c_proj`, `c_fc`), each matrix
//! to the same sparsity; embeddings, LayerNorms and biases are kept, as is usual (the tied
//! embedding is also the output head, and pruning it removes whole characters' scores).

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::checkpoint::Checkpoint;

/// True for the weight matrices [`prune_magnitude`] prunes.
pub fn is_prunable(name: &str) -> bool {
    name.starts_with("h.") && name.ends_with(".weight") && !name.contains(".ln_")
}

/// A copy of `ckpt` with the fraction `sparsity` (in `[0, 1]`) of smallest-magnitude weights of
/// each prunable matrix set to zero, and the fraction of all its parameters that are now 0.
pub fn prune_magnitude(ckpt: &Checkpoint, sparsity: f32) -> Result<(Checkpoint, f32)> {
    if !(0.0..=1.0).contains(&sparsity) {
        return Err(crate::Error::config(
            "sparsity",
            format!("{sparsity} is not a fraction in [0, 1]"),
        ));
    }
    let mut out = ckpt.clone();
    let (mut zeros, mut total) = (0usize, 0usize);
    for (name, t) in out.tensors.iter_mut() {
        let mut values = t
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        total += values.len();
        if is_prunable(name) {
            let n_prune = (sparsity as f64 * values.len() as f64).round() as usize;
            // The n_prune smallest |w| by index order; select_nth is O(n).
            let mut order: Vec<usize> = (0..values.len()).collect();
            if n_prune > 0 && n_prune < values.len() {
                order.select_nth_unstable_by(n_prune, |&a, &b| {
                    values[a].abs().total_cmp(&values[b].abs())
                });
            }
            for &i in order.iter().take(n_prune) {
                values[i] = 0.0;
            }
            *t = Tensor::from_vec(values.clone(), t.dims(), t.device())?;
        }
        zeros += values.iter().filter(|v| **v == 0.0).count();
    }
    Ok((out, zeros as f32 / total.max(1) as f32))
}

/// One point of the perplexity-against-sparsity curve.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrunePoint {
    /// The fraction asked for, of each prunable matrix.
    pub sparsity: f32,
    /// The fraction of all parameters that are zero afterwards.
    pub zero_fraction: f32,
    pub perplexity: f32,
}

/// Prunes `ckpt` to `sparsity` and measures the perplexity on the first `windows` windows of
/// `val` (see [`super::perplexity`]).
pub fn prune_point(
    ckpt: &Checkpoint,
    sparsity: f32,
    val: &[u32],
    windows: usize,
) -> Result<PrunePoint> {
    let (pruned, zero_fraction) = prune_magnitude(ckpt, sparsity)?;
    let model = pruned.to_model(&Device::Cpu)?;
    Ok(PrunePoint {
        sparsity,
        zero_fraction,
        perplexity: super::perplexity(&model, val, windows)?,
    })
}
