//! How a transformer knows where a token is: the position encodings a `gpt::Config` can pick,
//! as tensors for the model and as plain numbers for the lesson's explorer and graders.
//!
//! - learned: a trained table added to the token embeddings (GPT-2; lives in `gpt.rs` as `wpe`);
//! - sinusoidal: Vaswani et al. (2017) §3.5, a fixed table of sines and cosines, added;
//! - RoPE: Su et al., "RoFormer" (2021), rotates each pair of query/key coordinates by an
//!   angle proportional to the position, so `q_m · k_n` depends only on `m - n`;
//! - ALiBi: Press et al., "Train Short, Test Long" (ICLR 2022), no embedding at all: each
//!   head subtracts `slope × distance` from its attention scores.

use candle_core::{DType, Device, Tensor};

use crate::Result;

/// The base of the geometric sequence of frequencies (Vaswani et al.; RoFormer keeps it).
pub const BASE: f64 = 10_000.0;

/// Sinusoidal encoding of position `pos` in `dim` dimensions:
/// `PE(pos, 2i) = sin(pos / BASE^(2i/dim))`, `PE(pos, 2i+1) = cos(pos / BASE^(2i/dim))`.
pub fn sinusoidal(pos: usize, dim: usize) -> Vec<f64> {
    (0..dim)
        .map(|c| {
            let i = (c / 2) as f64;
            let angle = pos as f64 / BASE.powf(2.0 * i / dim as f64);
            if c % 2 == 0 { angle.sin() } else { angle.cos() }
        })
        .collect()
}

/// The sinusoidal table `(positions, dim)` as a tensor, to add to the token embeddings.
pub fn sinusoidal_table(
    positions: usize,
    dim: usize,
    dtype: DType,
    dev: &Device,
) -> Result<Tensor> {
    let values: Vec<f64> = (0..positions).flat_map(|p| sinusoidal(p, dim)).collect();
    Ok(Tensor::from_vec(values, (positions, dim), dev)?.to_dtype(dtype)?)
}

/// RoPE's rotation frequencies `θ_i = BASE^(-2i/dim)`, one per pair of coordinates.
pub fn rope_frequencies(dim: usize) -> Vec<f64> {
    (0..dim / 2)
        .map(|i| BASE.powf(-2.0 * i as f64 / dim as f64))
        .collect()
}

/// RoPE on one vector at position `pos`: each pair `(x_{2i}, x_{2i+1})` is rotated by the angle
/// `pos · θ_i` (RoFormer's interleaved pairs, eq. 34). `x.len()` must be even.
pub fn rope(x: &[f64], pos: usize) -> Vec<f64> {
    let mut out = x.to_vec();
    for (i, theta) in rope_frequencies(x.len()).into_iter().enumerate() {
        let (sin, cos) = (pos as f64 * theta).sin_cos();
        let (a, b) = (x[2 * i], x[2 * i + 1]);
        out[2 * i] = a * cos - b * sin;
        out[2 * i + 1] = a * sin + b * cos;
    }
    out
}

/// RoPE's cos and sin tables, each `(positions, dim / 2)`, computed once per model.
#[derive(Clone)]
pub struct RopeTables {
    cos: Tensor,
    sin: Tensor,
}

impl RopeTables {
    pub fn new(positions: usize, dim: usize, dtype: DType, dev: &Device) -> Result<Self> {
        let freqs = rope_frequencies(dim);
        let angles: Vec<f64> = (0..positions)
            .flat_map(|p| freqs.iter().map(move |f| p as f64 * f))
            .collect();
        let table = |f: fn(f64) -> f64| -> Result<Tensor> {
            let v: Vec<f64> = angles.iter().map(|&a| f(a)).collect();
            Ok(Tensor::from_vec(v, (positions, dim / 2), dev)?.to_dtype(dtype)?)
        };
        Ok(Self {
            cos: table(f64::cos)?,
            sin: table(f64::sin)?,
        })
    }

    /// Rotates `xs` `(b, n_head, t, head_dim)` placed at positions `offset..offset + t`.
    /// Built from narrow/mul/cat so that it has a backward pass.
    pub fn apply(&self, xs: &Tensor, offset: usize) -> Result<Tensor> {
        let (b_sz, n_head, seq_len, head_dim) = xs.dims4()?;
        let half = head_dim / 2;
        let cos = self.cos.narrow(0, offset, seq_len)?.unsqueeze(2)?; // (t, hd/2, 1)
        let sin = self.sin.narrow(0, offset, seq_len)?.unsqueeze(2)?;
        let pairs = xs.reshape((b_sz, n_head, seq_len, half, 2))?;
        let a = pairs.narrow(4, 0, 1)?; // (b, n_head, t, hd/2, 1)
        let b = pairs.narrow(4, 1, 1)?;
        let ra = (a.broadcast_mul(&cos)? - b.broadcast_mul(&sin)?)?;
        let rb = (a.broadcast_mul(&sin)? + b.broadcast_mul(&cos)?)?;
        Ok(Tensor::cat(&[&ra, &rb], 4)?.reshape((b_sz, n_head, seq_len, head_dim))?)
    }
}

/// ALiBi's head slopes: for `n` a power of two, the geometric sequence `2^(-8/n), 2^(-16/n),
/// …, 2^(-8)`; otherwise the slopes of the power of two below, then every other slope of the
/// one above (the paper's reference `get_slopes`).
pub fn alibi_slopes(n_head: usize) -> Vec<f64> {
    fn power_of_two(n: usize) -> Vec<f64> {
        let start = 2f64.powf(-8.0 / n as f64);
        (1..=n).map(|i| start.powi(i as i32)).collect()
    }
    if n_head.is_power_of_two() {
        return power_of_two(n_head);
    }
    let below = 1 << n_head.ilog2();
    let mut slopes = power_of_two(below);
    slopes.extend(
        power_of_two(2 * below)
            .into_iter()
            .step_by(2)
            .take(n_head - below),
    );
    slopes
}

/// ALiBi's additive score bias `(n_head, t, offset + t)`: `-slope_h × (query position − key
/// position)` for keys at or before the query (later keys are masked anyway and get 0).
pub fn alibi_bias(
    n_head: usize,
    seq_len: usize,
    offset: usize,
    dtype: DType,
    dev: &Device,
) -> Result<Tensor> {
    let total = offset + seq_len;
    let values: Vec<f32> = alibi_slopes(n_head)
        .into_iter()
        .flat_map(|m| {
            (0..seq_len).flat_map(move |i| {
                (0..total).map(move |j| {
                    let distance = (offset + i) as f64 - j as f64;
                    (-m * distance.max(0.0)) as f32
                })
            })
        })
        .collect();
    Ok(Tensor::from_vec(values, (n_head, seq_len, total), dev)?.to_dtype(dtype)?)
}
