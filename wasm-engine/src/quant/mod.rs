//! Post-training quantization and pruning of a trained GPT's weights.
//!
//! Three schemes, each a map from f32 weights to small integers plus a few f32 scales:
//!
//! - **int8 symmetric**, one scale per output row (LLM.int8()'s vector-wise quantization
//!   without its outlier split, Dettmers et al. 2022): `s = max|w| / 127`,
//!   `q = round(w / s)` in `[-127, 127]`, `w ≈ s q`.
//! - **int8 asymmetric** (affine), one scale and zero point per row: the row's range
//!   `[min(w, 0), max(w, 0)]` is mapped onto `[0, 255]`, `q = round(w / s) + z`, `w ≈ s (q - z)`.
//! - **int4 group-wise** symmetric, one scale per group of `group_size` consecutive weights of
//!   a row (the layout of GPTQ/AWQ checkpoints and llama.cpp's `Q4_0`): `s = max|w| / 7`,
//!   `q` in `[-8, 7]`, two weights packed per byte.
//!
//! Only the 2-D weight matrices are quantized (embeddings and linear layers, nearly all the
//! parameters); LayerNorm weights and biases stay in f32, as every scheme above does.
//! A [`QuantizedCheckpoint`] saves as `config.json` + a safetensors file holding the integer
//! tensors, their `.scale` (and `.zero_point`) tensors and the scheme in the header metadata.
//! To run a quantized model the engine dequantizes it back to f32 (candle has no int kernels);
//! [`matmul_i8`] shows the integer arithmetic a real int8 kernel does.

pub mod prune;

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, CheckpointMeta, expected_shapes};
use crate::model::gpt::{Gpt, loss_no_grad};
use crate::sample::{SamplingConfig, generate};
use crate::{Error, Result};

/// How a weight matrix is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scheme {
    Int8Symmetric,
    Int8Asymmetric,
    Int4 { group_size: usize },
}

impl Scheme {
    /// Short name for tables: `int8-sym`, `int8-asym`, `int4-g32`.
    pub fn name(&self) -> String {
        match self {
            Scheme::Int8Symmetric => "int8-sym".into(),
            Scheme::Int8Asymmetric => "int8-asym".into(),
            Scheme::Int4 { group_size } => format!("int4-g{group_size}"),
        }
    }

    /// Bits per weight including the f32 scales (and zero points) of a row of `cols`.
    pub fn bits_per_weight(&self, cols: usize) -> f64 {
        let cols = cols.max(1) as f64;
        match self {
            Scheme::Int8Symmetric => 8.0 + 32.0 / cols,
            Scheme::Int8Asymmetric => 8.0 + 40.0 / cols,
            Scheme::Int4 { group_size } => 4.0 + 32.0 / (*group_size).min(cols as usize) as f64,
        }
    }

    fn validate(&self) -> Result<()> {
        if let Scheme::Int4 { group_size } = self
            && (*group_size == 0 || group_size % 2 != 0)
        {
            return Err(Error::config(
                "group_size",
                format!("{group_size} is not a positive even number; use 32, 64 or 128"),
            ));
        }
        Ok(())
    }
}

/// Symmetric int8 of `xs` with one scale: `s = max|x| / 127`, `q = round(x / s)`. An all-zero
/// input gets scale 1 (any scale reproduces it). The round trip's error is at most `s / 2`.
pub fn quantize_symmetric_i8(xs: &[f32]) -> (Vec<i8>, f32) {
    let max = xs.iter().fold(0f32, |m, x| m.max(x.abs()));
    quantize_symmetric_i8_clipped(xs, max)
}

/// Symmetric int8 over a given range `[-clip, clip]` (a clip calibrated on other data, or
/// chosen below the largest value to spend the 255 levels on the bulk of the values):
/// `s = clip / 127`, and values beyond the range saturate at ±127. A non-positive clip gets
/// scale 1.
pub fn quantize_symmetric_i8_clipped(xs: &[f32], clip: f32) -> (Vec<i8>, f32) {
    let scale = if clip > 0.0 { clip / 127.0 } else { 1.0 };
    let q = xs
        .iter()
        .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8)
        .collect();
    (q, scale)
}

pub fn dequantize_symmetric_i8(q: &[i8], scale: f32) -> Vec<f32> {
    q.iter().map(|&q| f32::from(q) * scale).collect()
}

/// Asymmetric (affine) 8-bit: the range `[min(x, 0), max(x, 0)]` onto `[0, 255]` with scale
/// `s = (hi - lo) / 255` and zero point `z = round(-lo / s)`, so that 0 is exact (padding and
/// ReLU zeros stay zero). Returns `(q, s, z)`; `x ≈ s (q - z)`.
pub fn quantize_asymmetric_u8(xs: &[f32]) -> (Vec<u8>, f32, u8) {
    let lo = xs.iter().fold(0f32, |m, &x| m.min(x));
    let hi = xs.iter().fold(0f32, |m, &x| m.max(x));
    let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
    let zero = (-lo / scale).round().clamp(0.0, 255.0);
    let q = xs
        .iter()
        .map(|x| ((x / scale).round() + zero).clamp(0.0, 255.0) as u8)
        .collect();
    (q, scale, zero as u8)
}

pub fn dequantize_asymmetric_u8(q: &[u8], scale: f32, zero: u8) -> Vec<f32> {
    q.iter()
        .map(|&q| (f32::from(q) - f32::from(zero)) * scale)
        .collect()
}

/// Group-wise symmetric int4: for each group of `group_size` consecutive values (the last
/// may be shorter), `s = max|x| / 7` and `q = round(x / s)` in `[-8, 7]`. Values are packed two
/// per byte, the first in the low nibble, as two's-complement nibbles.
pub fn quantize_int4(xs: &[f32], group_size: usize) -> Result<(Vec<u8>, Vec<f32>)> {
    Scheme::Int4 { group_size }.validate()?;
    let mut q = Vec::with_capacity(xs.len());
    let mut scales = Vec::with_capacity(xs.len().div_ceil(group_size));
    for group in xs.chunks(group_size) {
        let max = group.iter().fold(0f32, |m, x| m.max(x.abs()));
        let scale = if max > 0.0 { max / 7.0 } else { 1.0 };
        scales.push(scale);
        q.extend(
            group
                .iter()
                .map(|x| (x / scale).round().clamp(-8.0, 7.0) as i8),
        );
    }
    Ok((pack_nibbles(&q), scales))
}

/// The `len` values of [`quantize_int4`]'s output.
pub fn dequantize_int4(
    packed: &[u8],
    scales: &[f32],
    len: usize,
    group_size: usize,
) -> Result<Vec<f32>> {
    if packed.len() != len.div_ceil(2) || scales.len() != len.div_ceil(group_size.max(1)) {
        return Err(Error::Checkpoint(format!(
            "int4 data of {} bytes and {} scales does not hold {len} values in groups of {group_size}",
            packed.len(),
            scales.len()
        )));
    }
    Ok(unpack_nibbles(packed, len)
        .iter()
        .enumerate()
        .map(|(i, &q)| f32::from(q) * scales[i / group_size])
        .collect())
}

fn pack_nibbles(q: &[i8]) -> Vec<u8> {
    q.chunks(2)
        .map(|pair| {
            let lo = (pair[0] as u8) & 0x0f;
            let hi = pair.get(1).map_or(0, |&h| (h as u8) & 0x0f);
            lo | (hi << 4)
        })
        .collect()
}

fn unpack_nibbles(packed: &[u8], len: usize) -> Vec<i8> {
    // A nibble is sign-extended by shifting it to the top of an i8 and back.
    let nibble = |n: u8| ((n << 4) as i8) >> 4;
    packed
        .iter()
        .flat_map(|&b| [nibble(b & 0x0f), nibble(b >> 4)])
        .take(len)
        .collect()
}

/// A quantized 2-D weight `(rows, cols)`: int8 with a scale (and zero point) per row, or int4
/// with a scale per group of each row.
#[derive(Clone, Debug, PartialEq)]
pub struct QTensor {
    pub scheme: Scheme,
    pub rows: usize,
    pub cols: usize,
    /// i8 values stored as bytes (symmetric), u8 values (asymmetric), or packed nibbles (int4,
    /// each row padded to whole bytes).
    pub data: Vec<u8>,
    pub scales: Vec<f32>,
    /// Asymmetric only, one per row.
    pub zero_points: Vec<u8>,
}

impl QTensor {
    /// Quantizes a 2-D f32 tensor row by row.
    pub fn quantize(w: &Tensor, scheme: Scheme) -> Result<Self> {
        scheme.validate()?;
        let (rows, cols) = w.dims2()?;
        let values = w
            .to_device(&Device::Cpu)?
            .to_dtype(candle_core::DType::F32)?
            .to_vec2::<f32>()?;
        let mut out = Self {
            scheme,
            rows,
            cols,
            data: Vec::new(),
            scales: Vec::new(),
            zero_points: Vec::new(),
        };
        for row in &values {
            match scheme {
                Scheme::Int8Symmetric => {
                    let (q, s) = quantize_symmetric_i8(row);
                    out.data.extend(q.iter().map(|&q| q as u8));
                    out.scales.push(s);
                }
                Scheme::Int8Asymmetric => {
                    let (q, s, z) = quantize_asymmetric_u8(row);
                    out.data.extend(q);
                    out.scales.push(s);
                    out.zero_points.push(z);
                }
                Scheme::Int4 { group_size } => {
                    let (q, s) = quantize_int4(row, group_size)?;
                    out.data.extend(q);
                    out.scales.extend(s);
                }
            }
        }
        Ok(out)
    }

    /// Bytes per stored row of `data`.
    fn row_bytes(&self) -> usize {
        match self.scheme {
            Scheme::Int4 { .. } => self.cols.div_ceil(2),
            _ => self.cols,
        }
    }

    fn scales_per_row(&self) -> usize {
        match self.scheme {
            Scheme::Int4 { group_size } => self.cols.div_ceil(group_size),
            _ => 1,
        }
    }

    /// Checks that the buffers match the shape and scheme (a corrupt file fails here).
    fn check(&self, name: &str) -> Result<()> {
        let want = [
            ("data", self.data.len(), self.rows * self.row_bytes()),
            (
                "scale",
                self.scales.len(),
                self.rows * self.scales_per_row(),
            ),
            (
                "zero_point",
                self.zero_points.len(),
                if self.scheme == Scheme::Int8Asymmetric {
                    self.rows
                } else {
                    0
                },
            ),
        ];
        for (what, got, expected) in want {
            if got != expected {
                return Err(Error::Checkpoint(format!(
                    "quantized tensor '{name}' has {got} {what} entries but its shape ({}, {}) and scheme {} call for {expected}",
                    self.rows,
                    self.cols,
                    self.scheme.name()
                )));
            }
        }
        if let Some(bad) = self.scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(Error::Checkpoint(format!(
                "quantized tensor '{name}' has scale {bad}; scales must be finite and positive"
            )));
        }
        Ok(())
    }

    /// The f32 values, row-major.
    pub fn dequantize_vec(&self) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(self.rows * self.cols);
        let rb = self.row_bytes();
        let spr = self.scales_per_row();
        for r in 0..self.rows {
            let row = &self.data[r * rb..(r + 1) * rb];
            match self.scheme {
                Scheme::Int8Symmetric => {
                    let q: Vec<i8> = row.iter().map(|&b| b as i8).collect();
                    out.extend(dequantize_symmetric_i8(&q, self.scales[r]));
                }
                Scheme::Int8Asymmetric => out.extend(dequantize_asymmetric_u8(
                    row,
                    self.scales[r],
                    self.zero_points[r],
                )),
                Scheme::Int4 { group_size } => out.extend(dequantize_int4(
                    row,
                    &self.scales[r * spr..(r + 1) * spr],
                    self.cols,
                    group_size,
                )?),
            }
        }
        Ok(out)
    }

    pub fn dequantize(&self, device: &Device) -> Result<Tensor> {
        Ok(Tensor::from_vec(
            self.dequantize_vec()?,
            (self.rows, self.cols),
            device,
        )?)
    }

    /// Bytes of the stored integers, scales and zero points.
    pub fn bytes(&self) -> usize {
        self.data.len() + 4 * self.scales.len() + self.zero_points.len()
    }
}

/// `y = x Wᵀ` with `W` int8-symmetric `(n, k)` and `x` f32 `(m, k)`, the way an int8 kernel
/// does it: each row of `x` is quantized to int8 on the fly (dynamic quantization), the dot
/// products are summed exactly in i32, and one multiply per output brings back the scales:
/// `y[i][j] = s_x[i] · s_w[j] · Σ_l q_x[i][l] q_w[j][l]`. Returns `(m, n)` row-major.
pub fn matmul_i8(x: &[f32], m: usize, k: usize, w: &QTensor) -> Result<Vec<f32>> {
    if w.scheme != Scheme::Int8Symmetric {
        return Err(Error::config(
            "scheme",
            format!(
                "matmul_i8 needs int8-sym weights, got {}; dequantize other schemes first",
                w.scheme.name()
            ),
        ));
    }
    if w.cols != k || x.len() != m * k {
        return Err(Error::config(
            "x",
            format!(
                "cannot multiply x of {} values as ({m}, {k}) by Wᵀ of W ({}, {})",
                x.len(),
                w.rows,
                w.cols
            ),
        ));
    }
    let mut y = vec![0f32; m * w.rows];
    for (i, x_row) in x.chunks(k).enumerate() {
        let (qx, sx) = quantize_symmetric_i8(x_row);
        for j in 0..w.rows {
            let qw = &w.data[j * k..(j + 1) * k];
            y[i * w.rows + j] = sx * w.scales[j] * dot_i8(&qx, qw) as f32;
        }
    }
    Ok(y)
}

/// Σ a[l]·b[l] in i32, with `b` the i8 bytes of a weight row. Chunks of 16 give the compiler
/// independent accumulators to vectorise (SIMD on native and wasm simd128).
fn dot_i8(a: &[i8], b: &[u8]) -> i32 {
    let mut acc = [0i32; 16];
    let mut ca = a.chunks_exact(16);
    let mut cb = b.chunks_exact(16);
    for (xa, xb) in (&mut ca).zip(&mut cb) {
        for l in 0..16 {
            acc[l] += i32::from(xa[l]) * i32::from(xb[l] as i8);
        }
    }
    let tail: i32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &w)| i32::from(x) * i32::from(w as i8))
        .sum();
    acc.iter().sum::<i32>() + tail
}

/// Format tag in the safetensors header of a quantized checkpoint.
const FORMAT: &str = "attention-workshop/quantized-gpt";

/// A checkpoint whose 2-D weights are quantized; the rest stays f32.
#[derive(Clone, Debug)]
pub struct QuantizedCheckpoint {
    pub meta: CheckpointMeta,
    pub scheme: Scheme,
    pub quantized: HashMap<String, QTensor>,
    pub dense: HashMap<String, Tensor>,
}

impl QuantizedCheckpoint {
    /// Quantizes every 2-D tensor of `ckpt` with `scheme`.
    pub fn quantize(ckpt: &Checkpoint, scheme: Scheme) -> Result<Self> {
        scheme.validate()?;
        let mut quantized = HashMap::new();
        let mut dense = HashMap::new();
        for (name, t) in &ckpt.tensors {
            if t.rank() == 2 {
                quantized.insert(name.clone(), QTensor::quantize(t, scheme)?);
            } else {
                dense.insert(name.clone(), t.clone());
            }
        }
        Ok(Self {
            meta: ckpt.meta.clone(),
            scheme,
            quantized,
            dense,
        })
    }

    /// Back to an f32 checkpoint (the weights the quantized model computes with).
    pub fn dequantize(&self) -> Result<Checkpoint> {
        let mut tensors = self.dense.clone();
        for (name, q) in &self.quantized {
            tensors.insert(name.clone(), q.dequantize(&Device::Cpu)?);
        }
        Ok(Checkpoint {
            meta: self.meta.clone(),
            tensors,
        })
    }

    pub fn to_model(&self, device: &Device) -> Result<Gpt> {
        self.dequantize()?.to_model(device)
    }

    /// The bytes of `config.json` and the quantized safetensors file.
    pub fn to_parts(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        let config = serde_json::to_vec_pretty(&self.meta)?;
        let mut buffers: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        for (name, t) in &self.dense {
            let values = t
                .to_device(&Device::Cpu)?
                .to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            buffers.push((
                name.clone(),
                Dtype::F32,
                t.dims().to_vec(),
                f32_bytes(&values),
            ));
        }
        for (name, q) in &self.quantized {
            let dtype = match q.scheme {
                Scheme::Int8Symmetric => Dtype::I8,
                _ => Dtype::U8,
            };
            buffers.push((
                name.clone(),
                dtype,
                vec![q.rows, q.row_bytes()],
                q.data.clone(),
            ));
            buffers.push((
                format!("{name}.scale"),
                Dtype::F32,
                vec![q.scales.len()],
                f32_bytes(&q.scales),
            ));
            if !q.zero_points.is_empty() {
                buffers.push((
                    format!("{name}.zero_point"),
                    Dtype::U8,
                    vec![q.zero_points.len()],
                    q.zero_points.clone(),
                ));
            }
        }
        let views = buffers
            .iter()
            .map(|(name, dtype, shape, data)| {
                TensorView::new(*dtype, shape.clone(), data)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| Error::Checkpoint(format!("cannot write '{name}': {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let metadata = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("scheme".to_string(), serde_json::to_string(&self.scheme)?),
        ]);
        let weights = safetensors::tensor::serialize(views, Some(metadata))
            .map_err(|e| Error::Checkpoint(format!("cannot serialize tensors: {e}")))?;
        Ok((config, weights))
    }

    /// Reads a quantized checkpoint, checking every tensor against the config's shapes.
    pub fn from_parts(config_json: &[u8], weights: &[u8]) -> Result<Self> {
        let meta: CheckpointMeta = serde_json::from_slice(config_json)
            .map_err(|e| Error::Checkpoint(format!("config.json is not a valid config: {e}")))?;
        meta.model
            .validate()
            .map_err(|e| Error::Checkpoint(format!("config.json: {e}")))?;
        let st = SafeTensors::deserialize(weights).map_err(|e| {
            Error::Checkpoint(format!(
                "the quantized weights are truncated or corrupt: {e}"
            ))
        })?;
        let (_, header) = SafeTensors::read_metadata(weights)
            .map_err(|e| Error::Checkpoint(format!("unreadable safetensors header: {e}")))?;
        let info = header.metadata().clone().unwrap_or_default();
        if info.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(Error::Checkpoint(
                "these weights are not a quantized checkpoint (no quantization metadata); load a plain one with Checkpoint::from_parts".into(),
            ));
        }
        let scheme: Scheme = serde_json::from_str(info.get("scheme").map_or("", |s| s.as_str()))
            .map_err(|e| Error::Checkpoint(format!("unknown quantization scheme: {e}")))?;
        scheme.validate()?;
        let tensor = |name: &str| {
            st.tensor(name).map_err(|_| {
                Error::Checkpoint(format!("the quantized weights lack tensor '{name}'"))
            })
        };
        let mut quantized = HashMap::new();
        let mut dense = HashMap::new();
        let mut names: Vec<(String, Vec<usize>)> =
            expected_shapes(&meta.model)?.into_iter().collect();
        names.sort();
        for (name, shape) in names {
            let view = tensor(&name)?;
            if shape.len() == 2 {
                let scales = tensor(&format!("{name}.scale"))?;
                if scales.dtype() != Dtype::F32 {
                    return Err(Error::Checkpoint(format!(
                        "'{name}.scale' is {:?}, expected F32",
                        scales.dtype()
                    )));
                }
                let zero_points = match scheme {
                    Scheme::Int8Asymmetric => {
                        tensor(&format!("{name}.zero_point"))?.data().to_vec()
                    }
                    _ => Vec::new(),
                };
                let q = QTensor {
                    scheme,
                    rows: shape[0],
                    cols: shape[1],
                    data: view.data().to_vec(),
                    scales: f32_values(scales.data()),
                    zero_points,
                };
                q.check(&name)?;
                quantized.insert(name, q);
            } else {
                if view.dtype() != Dtype::F32 || view.shape() != shape.as_slice() {
                    return Err(Error::Checkpoint(format!(
                        "tensor '{name}' is {:?} {:?}, but the config calls for F32 {shape:?}",
                        view.dtype(),
                        view.shape()
                    )));
                }
                let values = f32_values(view.data());
                dense.insert(name, Tensor::from_vec(values, shape, &Device::Cpu)?);
            }
        }
        Ok(Self {
            meta,
            scheme,
            quantized,
            dense,
        })
    }
}

fn f32_bytes(xs: &[f32]) -> Vec<u8> {
    xs.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f32_values(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Perplexity `exp(mean loss)` of `model` on the first `windows` non-overlapping windows of
/// `ids` (a validation split), each `block_size` tokens: deterministic, so settings compare.
pub fn perplexity(model: &Gpt, ids: &[u32], windows: usize) -> Result<f32> {
    let t = model.config().block_size;
    let available = ids.len().saturating_sub(1) / t;
    let n = windows.min(available);
    if n == 0 {
        return Err(Error::Corpus(format!(
            "{} tokens are fewer than one window of {} + 1; use a longer text",
            ids.len(),
            t
        )));
    }
    let mut x = Vec::with_capacity(n * t);
    let mut y = Vec::with_capacity(n * t);
    for w in 0..n {
        x.extend_from_slice(&ids[w * t..w * t + t]);
        y.extend_from_slice(&ids[w * t + 1..w * t + t + 1]);
    }
    let device = model.device();
    let x = Tensor::from_vec(x, (n, t), device)?;
    let y = Tensor::from_vec(y, (n, t), device)?;
    Ok(loss_no_grad(model, &x, &y)?.exp())
}

/// One weight format of lesson E3's comparison, measured on a trained checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FormatReport {
    /// `fp32`, or the scheme's [`Scheme::name`].
    pub name: String,
    /// Bytes of the serialised safetensors file (the download), scales and header included.
    pub file_bytes: usize,
    /// On the validation windows, see [`perplexity`].
    pub perplexity: f32,
    /// A seeded sample after the prompt (the prompt included).
    pub sample: String,
}

/// Saves `ckpt` as fp32 (`scheme = None`) or quantized with `scheme`, loads the model back from
/// those bytes, and measures the file, the perplexity on the first `windows` windows of `val`
/// and a sample of `sample_tokens` tokens after `prompt` at temperature 0.8 with `seed` (the
/// same seed for every format, so the samples differ only through the weights).
pub fn compare_format(
    ckpt: &Checkpoint,
    scheme: Option<Scheme>,
    val: &[u32],
    windows: usize,
    prompt: &str,
    sample_tokens: usize,
    seed: u64,
) -> Result<FormatReport> {
    let (name, file_bytes, model) = match scheme {
        None => {
            let (config, weights) = ckpt.to_parts()?;
            let model = Checkpoint::from_parts(&config, &weights)?.to_model(&Device::Cpu)?;
            ("fp32".to_string(), weights.len(), model)
        }
        Some(scheme) => {
            let (config, weights) = QuantizedCheckpoint::quantize(ckpt, scheme)?.to_parts()?;
            let model =
                QuantizedCheckpoint::from_parts(&config, &weights)?.to_model(&Device::Cpu)?;
            (scheme.name(), weights.len(), model)
        }
    };
    let perplexity = perplexity(&model, val, windows)?;
    let tokenizer = &ckpt.meta.tokenizer;
    let prompt_ids = tokenizer.encode(if prompt.is_empty() { "\n" } else { prompt })?;
    let config = SamplingConfig {
        temperature: 0.8,
        seed,
        ..SamplingConfig::default()
    };
    let new = generate(&model, &prompt_ids, sample_tokens, &config, true)?;
    let sample = format!("{prompt}{}", tokenizer.decode(&new)?);
    Ok(FormatReport {
        name,
        file_bytes,
        perplexity,
        sample,
    })
}

/// Memory of `n_params` weights at `bits` per weight, in bytes.
pub fn weight_bytes(n_params: f64, bits: f64) -> f64 {
    n_params * bits / 8.0
}

#[cfg(test)]
mod tests;
