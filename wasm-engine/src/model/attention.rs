//! Scaled dot-product attention and its masks, shared by every architecture (GPT's causal
//! self-attention, BERT's bidirectional one, T5's cross-attention) and by the graders that
//! check a student's attention against the engine's.
//!
//! Vaswani et al., "Attention Is All You Need" (2017), §3.2.1:
//! `Attention(Q, K, V) = softmax(Q Kᵀ / √d_k + M) V`, where the additive mask `M` is 0 where a
//! query may look and −∞ where it may not.

use candle_core::{D, DType, Device, Tensor};

use crate::{Error, Result};

/// Additive causal mask `(t, offset + t)`: query `i` (absolute position `offset + i`) may
/// attend to keys `0..=offset + i`; later keys get −∞ so softmax gives them zero weight.
pub fn causal_mask(t: usize, offset: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let total = offset + t;
    let allowed: Vec<Vec<bool>> = (0..t)
        .map(|i| (0..total).map(|j| j <= offset + i).collect())
        .collect();
    additive_mask(&allowed, dtype, device)
}

/// The additive form `(t_q, t_k)` of a boolean mask: `allowed[i][j]` says whether query `i`
/// may attend to key `j`. A row with no allowed key would make softmax divide 0 by 0, so it is
/// an error rather than a row of NaN.
pub fn additive_mask(allowed: &[Vec<bool>], dtype: DType, device: &Device) -> Result<Tensor> {
    let t_q = allowed.len();
    let t_k = allowed.first().map_or(0, Vec::len);
    let mut values = Vec::with_capacity(t_q * t_k);
    for (i, row) in allowed.iter().enumerate() {
        if row.len() != t_k {
            return Err(Error::config(
                "mask",
                format!(
                    "row {i} has {} entries but row 0 has {t_k}; a mask is one row per query, one column per key",
                    row.len()
                ),
            ));
        }
        if !row.iter().any(|&a| a) {
            return Err(Error::config(
                "mask",
                format!("query {i} may attend to no key; every row needs at least one allowed key"),
            ));
        }
        values.extend(
            row.iter()
                .map(|&a| if a { 0.0f32 } else { f32::NEG_INFINITY }),
        );
    }
    Ok(Tensor::from_vec(values, (t_q, t_k), device)?.to_dtype(dtype)?)
}

/// Attention weights `softmax(q kᵀ / √d + mask)` over the last axis. `q` is `(…, t_q, d)`,
/// `k` is `(…, t_k, d)` and `mask` (additive) broadcasts to `(…, t_q, t_k)`; `bias` is an
/// extra additive score term (ALiBi's distance penalty), broadcast the same way.
pub fn weights(q: &Tensor, k: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    weights_with_bias(q, k, mask, None)
}

/// [`weights`] with an extra additive score bias (ALiBi, Press et al. 2022).
pub fn weights_with_bias(
    q: &Tensor,
    k: &Tensor,
    mask: Option<&Tensor>,
    bias: Option<&Tensor>,
) -> Result<Tensor> {
    let head_dim = q.dim(D::Minus1)?;
    let scale = 1.0 / (head_dim as f64).sqrt();
    let att = (q.matmul(&k.t()?)? * scale)?; // (…, t_q, t_k)
    let att = match bias {
        Some(bias) => att.broadcast_add(bias)?,
        None => att,
    };
    let att = match mask {
        Some(mask) => att.broadcast_add(mask)?,
        None => att,
    };
    Ok(candle_nn::ops::softmax(&att, D::Minus1)?)
}

/// `softmax(q kᵀ / √d + mask) v`: the attention output `(…, t_q, d_v)`.
pub fn scaled_dot_product(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    Ok(weights(q, k, mask)?.matmul(v)?)
}
