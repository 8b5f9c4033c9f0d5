//! GPT: a decoder-only transformer language model.
//!
//! Radford et al., "Language Models are Unsupervised Multitask Learners" (GPT-2, 2019), in the
//! form of Karpathy's nanoGPT `model.py`: token and learned position embeddings, a stack of
//! pre-LayerNorm blocks (causal multi-head self-attention, then a GELU MLP, each inside a
//! residual connection), a final LayerNorm, and a head tied to the token embedding.
//!
//! The config's defaults are exactly that model. Lessons C2 and C3 switch its parts through
//! `Config`: the position encoding (learned, sinusoidal, RoPE, ALiBi; see `position.rs`),
//! the norm (LayerNorm, RMSNorm), the feed-forward network (GELU, ReLU, SwiGLU), the norm's
//! place (pre, as GPT-2, or post, as the original transformer) and the residual connections.
//!
//! Tensor names follow GPT-2 (`wte`, `wpe`, `h.{i}.attn.c_attn`, `ln_f`), so a checkpoint maps
//! onto Hugging Face's `GPT2LMHeadModel` by name (see `checkpoint::export_hf_gpt2`). Weights are
//! stored in candle's `Linear` layout `(out, in)`; GPT-2's `Conv1D` stores the transpose.

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::attention::{self, causal_mask};
use super::position::{self, RopeTables};
use crate::{Error, Result};

/// The shape of a GPT. Field names are nanoGPT's `GPTConfig`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Defaults to 0 in a config file: a character-level run sets it from its corpus (and the
    /// runner from its tokenizer); `validate` rejects a 0 that nothing replaced.
    #[serde(default)]
    pub vocab_size: usize,
    /// Longest context the model attends over (GPT-2's `n_positions`).
    pub block_size: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// Width of the residual stream (`hidden_size` in Hugging Face's naming).
    pub n_embd: usize,
    /// Dropout probability on embeddings, attention weights and residual branches; 0 is
    /// right for pretraining small models (nanoGPT's default) and keeps training deterministic.
    #[serde(default)]
    pub dropout: f32,
    /// Biases in the linear layers and LayerNorms (GPT-2 has them; nanoGPT can drop them).
    #[serde(default = "default_true")]
    pub bias: bool,
    // The variants below default to GPT-2 and are left out of the JSON when they are the
    // default, so a GPT-2 config reads and writes exactly as before they existed.
    /// How positions enter the model.
    #[serde(default, skip_serializing_if = "is_default")]
    pub position: PositionEncoding,
    #[serde(default, skip_serializing_if = "is_default")]
    pub norm: Norm,
    /// The feed-forward network's non-linearity.
    #[serde(default, skip_serializing_if = "is_default")]
    pub ffn: Ffn,
    /// Where the norms sit relative to the residual connections.
    #[serde(default, skip_serializing_if = "is_default")]
    pub norm_placement: NormPlacement,
    /// Residual connections around attention and the FFN (turn off to see why they exist).
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub residual: bool,
}

/// The parts of the block that lesson C3 swaps between two otherwise identical models; each
/// field replaces the [`Config`] field of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockVariant {
    pub norm: Norm,
    pub ffn: Ffn,
    pub norm_placement: NormPlacement,
    pub residual: bool,
}

fn default_true() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_default<T: Default + PartialEq>(t: &T) -> bool {
    *t == T::default()
}

/// How the model knows where each token is (see `position.rs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionEncoding {
    /// A trained table `wpe` added to the token embeddings (GPT-2).
    #[default]
    Learned,
    /// A fixed table of sines and cosines, added (Vaswani et al. 2017).
    Sinusoidal,
    /// Queries and keys rotated by position (RoFormer 2021; LLaMA).
    Rope,
    /// A per-head penalty on attention scores growing with distance (Press et al. 2022).
    Alibi,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Norm {
    /// Subtract the mean, divide by the standard deviation, scale and shift (Ba et al. 2016).
    #[default]
    #[serde(rename = "layernorm")]
    LayerNorm,
    /// Divide by the root mean square and scale, no centring (Zhang & Sennrich 2019; LLaMA).
    #[serde(rename = "rmsnorm")]
    RmsNorm,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ffn {
    /// `c_proj(gelu(c_fc(x)))`, hidden width 4·n_embd, exact erf GELU (GPT-2, BERT).
    #[default]
    Gelu,
    /// The same with ReLU (the original transformer).
    Relu,
    /// `c_proj(silu(c_gate(x)) ⊙ c_fc(x))` (Shazeer 2020; LLaMA), hidden width ⌈8·n_embd/3⌉
    /// rounded up to a multiple of 8, so that its three matrices hold about as many
    /// parameters as the two of the 4× MLP.
    Swiglu,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormPlacement {
    /// `x = x + f(norm(x))` (GPT-2 and every large model since).
    #[default]
    Pre,
    /// `x = norm(x + f(x))` (the original transformer and BERT).
    Post,
}

/// nanoGPT's `GPTConfig` defaults: GPT-2 small with the vocabulary padded to 50304.
impl Default for Config {
    fn default() -> Self {
        Self {
            vocab_size: 50304,
            block_size: 1024,
            n_layer: 12,
            n_head: 12,
            n_embd: 768,
            dropout: 0.0,
            bias: true,
            position: PositionEncoding::default(),
            norm: Norm::default(),
            ffn: Ffn::default(),
            norm_placement: NormPlacement::default(),
            residual: true,
        }
    }
}

impl Config {
    /// Checks every field; the error names the first field that is wrong.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("block_size", self.block_size),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_embd", self.n_embd),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(Error::config(field, "must be greater than 0"));
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return Err(Error::config(
                "n_embd",
                format!(
                    "width {} is not divisible by n_head {}; choose a width that is a multiple of the head count",
                    self.n_embd, self.n_head
                ),
            ));
        }
        if self.position == PositionEncoding::Rope && !self.head_dim().is_multiple_of(2) {
            return Err(Error::config(
                "position",
                format!(
                    "rope rotates pairs of coordinates, so the head width must be even; n_embd {} / n_head {} = {}",
                    self.n_embd,
                    self.n_head,
                    self.head_dim()
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::config(
                "dropout",
                format!("{} is not a probability in [0, 1)", self.dropout),
            ));
        }
        // Guard against configs that cannot possibly fit: 2^31 parameters is 8 GiB of f32.
        if self.n_params() > (1 << 31) {
            return Err(Error::config(
                "n_embd",
                format!("{} parameters is too many for this engine", self.n_params()),
            ));
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Width of the FFN's hidden layer: 4·n_embd, or for SwiGLU ⌈8·n_embd/3⌉ rounded up to
    /// a multiple of 8 (LLaMA rounds to 256; 8 suits small models).
    pub fn ffn_hidden(&self) -> usize {
        match self.ffn {
            Ffn::Gelu | Ffn::Relu => 4 * self.n_embd,
            Ffn::Swiglu => (8 * self.n_embd).div_ceil(3).div_ceil(8) * 8,
        }
    }

    /// Whether this is the GPT-2 architecture (what Hugging Face's `GPT2LMHeadModel` runs).
    pub fn is_gpt2(&self) -> bool {
        self.position == PositionEncoding::Learned
            && self.norm == Norm::LayerNorm
            && self.ffn == Ffn::Gelu
            && self.norm_placement == NormPlacement::Pre
            && self.residual
    }

    /// Whether the norms have a bias (LayerNorm with `bias`; RMSNorm never).
    pub fn norm_bias(&self) -> bool {
        self.bias && self.norm == Norm::LayerNorm
    }

    /// Number of parameters, counting the tied head once (as nanoGPT's `get_num_params`
    /// with `non_embedding=False`).
    pub fn n_params(&self) -> usize {
        let (c, l, v, t) = (self.n_embd, self.n_layer, self.vocab_size, self.block_size);
        let b = usize::from(self.bias);
        let ln = c + usize::from(self.norm_bias()) * c;
        let attn = c * 3 * c + b * 3 * c + c * c + b * c;
        let h = self.ffn_hidden();
        let mlp = match self.ffn {
            Ffn::Gelu | Ffn::Relu => c * h + b * h + h * c + b * c,
            Ffn::Swiglu => 2 * (c * h + b * h) + h * c + b * c,
        };
        let block = 2 * ln + attn + mlp;
        let wpe = if self.position == PositionEncoding::Learned {
            t * c
        } else {
            0
        };
        v * c + wpe + l * block + ln
    }
}

/// LayerNorm or RMSNorm over the last dimension, from primitive ops so that it has a
/// backward pass (candle-nn's fused kernels have none). LayerNorm: Ba et al., "Layer
/// Normalization" (2016), `(x - mean) / sqrt(var + eps) * w + b`. RMSNorm: Zhang & Sennrich
/// (2019), `x / sqrt(mean(x²) + eps) * w`.
struct LayerNorm {
    weight: Tensor,
    bias: Option<Tensor>,
    rms: bool,
}

impl LayerNorm {
    const EPS: f64 = 1e-5;

    fn new(size: usize, cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(size, "weight", candle_nn::Init::Const(1.0))?;
        let bias = if cfg.norm_bias() {
            Some(vb.get_with_hints(size, "bias", candle_nn::Init::Const(0.0))?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            rms: cfg.norm == Norm::RmsNorm,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if self.rms {
            rms_norm(xs, &self.weight, Self::EPS)
        } else {
            layer_norm(xs, &self.weight, self.bias.as_ref(), Self::EPS)
        }
    }
}

/// LayerNorm over the last dimension: `(x - mean) / sqrt(var + eps) * weight + bias`, with the
/// biased variance (divide by n) as PyTorch's `nn.LayerNorm`. Lesson C3's exercise is graded
/// against it.
pub fn layer_norm(xs: &Tensor, weight: &Tensor, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    let mean = xs.mean_keepdim(D::Minus1)?;
    let xs = xs.broadcast_sub(&mean)?;
    let var = xs.sqr()?.mean_keepdim(D::Minus1)?;
    let xs = xs.broadcast_div(&(var + eps)?.sqrt()?)?;
    let xs = xs.broadcast_mul(weight)?;
    Ok(match bias {
        Some(bias) => xs.broadcast_add(bias)?,
        None => xs,
    })
}

/// RMSNorm over the last dimension: `x / sqrt(mean(x²) + eps) * weight`.
pub fn rms_norm(xs: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let ms = xs.sqr()?.mean_keepdim(D::Minus1)?;
    Ok(xs
        .broadcast_div(&(ms + eps)?.sqrt()?)?
        .broadcast_mul(weight)?)
}

fn linear(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
    let init = candle_nn::Init::Randn {
        mean: 0.0,
        stdev: 0.02,
    };
    let weight = vb.get_with_hints((out_dim, in_dim), "weight", init)?;
    let bias = if bias {
        Some(vb.get_with_hints(out_dim, "bias", candle_nn::Init::Const(0.0))?)
    } else {
        None
    };
    Ok(Linear::new(weight, bias))
}

/// Inverted dropout: zero each element with probability `p` and scale the rest by 1/(1-p).
fn dropout(xs: &Tensor, p: f32, train: bool) -> Result<Tensor> {
    if !train || p == 0.0 {
        return Ok(xs.clone());
    }
    Ok(candle_nn::ops::dropout(xs, p)?)
}

/// Keys and values of the positions seen so far, per layer, so that each new token costs one
/// row of attention instead of a whole forward pass over the prefix.
#[derive(Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    pub fn new(n_layer: usize) -> Self {
        Self {
            layers: vec![None; n_layer],
        }
    }

    /// Number of positions cached (in every layer, between forward passes).
    pub fn len(&self) -> usize {
        self.layer_len(0)
    }

    /// Positions cached in layer `i`; during a forward pass, earlier layers are ahead.
    fn layer_len(&self, i: usize) -> usize {
        match self.layers.get(i) {
            Some(Some((k, _))) => k.dim(2).unwrap_or(0),
            _ => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(|l| *l = None);
    }

    /// Bytes held: layers × 2 × heads × head_dim × tokens × 4 (f32).
    pub fn bytes(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .map(|(k, v)| (k.elem_count() + v.elem_count()) * 4)
            .sum()
    }

    /// Appends new keys and values `(b, n_head, t, head_dim)` to layer `i`, returning the
    /// whole cached sequence.
    fn append(&mut self, i: usize, k: Tensor, v: Tensor) -> Result<(Tensor, Tensor)> {
        let (k, v) = match self.layers[i].take() {
            Some((past_k, past_v)) => (
                Tensor::cat(&[&past_k, &k], 2)?,
                Tensor::cat(&[&past_v, &v], 2)?,
            ),
            None => (k, v),
        };
        self.layers[i] = Some((k.clone(), v.clone()));
        Ok((k, v))
    }
}

/// Causal multi-head self-attention, Vaswani et al. (2017) §3.2, with a fused q|k|v projection.
struct CausalSelfAttention {
    c_attn: Linear,
    c_proj: Linear,
    n_head: usize,
    head_dim: usize,
    dropout: f32,
    /// RoPE's tables when the model rotates queries and keys.
    rope: Option<RopeTables>,
    /// ALiBi's distance penalty on the scores.
    alibi: bool,
}

impl CausalSelfAttention {
    fn new(cfg: &Config, rope: Option<RopeTables>, vb: VarBuilder) -> Result<Self> {
        let c = cfg.n_embd;
        Ok(Self {
            c_attn: linear(c, 3 * c, cfg.bias, vb.pp("c_attn"))?,
            c_proj: linear(c, c, cfg.bias, vb.pp("c_proj"))?,
            n_head: cfg.n_head,
            head_dim: cfg.head_dim(),
            dropout: cfg.dropout,
            rope,
            alibi: cfg.position == PositionEncoding::Alibi,
        })
    }

    /// Projects `xs` at positions `offset..offset + t` to per-head queries, keys and values,
    /// each `(b, n_head, t, head_dim)`; with RoPE, queries and keys come out rotated.
    fn qkv(&self, xs: &Tensor, offset: usize) -> Result<(Tensor, Tensor, Tensor)> {
        let (b_sz, seq_len, c) = xs.dims3()?;
        let qkv = self.c_attn.forward(xs)?; // (b, t, 3c)
        let split = |i: usize| -> Result<Tensor> {
            Ok(qkv
                .narrow(2, i * c, c)? // (b, t, c)
                .reshape((b_sz, seq_len, self.n_head, self.head_dim))?
                .transpose(1, 2)? // (b, n_head, t, head_dim)
                .contiguous()?)
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        match &self.rope {
            Some(rope) => Ok((rope.apply(&q, offset)?, rope.apply(&k, offset)?, v)),
            None => Ok((q, k, v)),
        }
    }

    /// Attention weights `softmax(q kᵀ / √d + mask [+ alibi])`, `(b, n_head, t, offset + t)`.
    fn weights_at(&self, q: &Tensor, k: &Tensor, offset: usize) -> Result<Tensor> {
        let seq_len = q.dim(2)?;
        // A single new query may see every cached key, so it needs no mask.
        let mask = if seq_len > 1 {
            Some(causal_mask(seq_len, offset, q.dtype(), q.device())?)
        } else {
            None
        };
        let bias = if self.alibi {
            Some(position::alibi_bias(
                self.n_head,
                seq_len,
                offset,
                q.dtype(),
                q.device(),
            )?)
        } else {
            None
        };
        attention::weights_with_bias(q, k, mask.as_ref(), bias.as_ref())
    }

    /// softmax(q kᵀ / √d + mask) v, then the output projection. `offset` is how many
    /// positions precede `q` (nonzero only when keys come from a cache).
    fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        offset: usize,
        train: bool,
    ) -> Result<Tensor> {
        let (b_sz, _, seq_len, _) = q.dims4()?;
        let att = self.weights_at(q, k, offset)?; // (b, n_head, t, offset + t)
        let att = dropout(&att, self.dropout, train)?;
        let ys = att.matmul(v)?; // (b, n_head, t, head_dim)
        let ys = ys
            .transpose(1, 2)? // (b, t, n_head, head_dim)
            .reshape((b_sz, seq_len, self.n_head * self.head_dim))?; // (b, t, c)
        let ys = self.c_proj.forward(&ys)?;
        dropout(&ys, self.dropout, train)
    }

    fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let (q, k, v) = self.qkv(xs, 0)?;
        self.attend(&q, &k, &v, 0, train)
    }

    fn forward_cached(&self, xs: &Tensor, cache: &mut KvCache, layer: usize) -> Result<Tensor> {
        let offset = cache.layer_len(layer);
        let (q, k, v) = self.qkv(xs, offset)?;
        let (k, v) = cache.append(layer, k, v)?; // (b, n_head, offset + t, head_dim)
        self.attend(&q, &k, &v, offset, false)
    }

    /// Attention weights `(b, n_head, t, t)` for a sequence, for visualisation.
    fn weights(&self, xs: &Tensor) -> Result<Tensor> {
        let (q, k, _) = self.qkv(xs, 0)?;
        self.weights_at(&q, &k, 0)
    }
}

/// The position-wise feed-forward network: expand, non-linearity, project back. With SwiGLU
/// a second expansion `c_gate` gates the first: `c_proj(silu(c_gate(x)) ⊙ c_fc(x))`.
struct Mlp {
    c_fc: Linear,
    c_gate: Option<Linear>,
    c_proj: Linear,
    ffn: Ffn,
    dropout: f32,
}

impl Mlp {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let (c, h) = (cfg.n_embd, cfg.ffn_hidden());
        let c_gate = match cfg.ffn {
            Ffn::Swiglu => Some(linear(c, h, cfg.bias, vb.pp("c_gate"))?),
            Ffn::Gelu | Ffn::Relu => None,
        };
        Ok(Self {
            c_fc: linear(c, h, cfg.bias, vb.pp("c_fc"))?,
            c_gate,
            c_proj: linear(h, c, cfg.bias, vb.pp("c_proj"))?,
            ffn: cfg.ffn,
            dropout: cfg.dropout,
        })
    }

    fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let up = self.c_fc.forward(xs)?; // (b, t, hidden)
        let hidden = match (&self.c_gate, self.ffn) {
            (Some(gate), _) => (gate.forward(xs)?.silu()? * up)?,
            (None, Ffn::Relu) => up.relu()?,
            (None, _) => up.gelu_erf()?,
        };
        let xs = self.c_proj.forward(&hidden)?; // (b, t, c)
        dropout(&xs, self.dropout, train)
    }
}

struct Block {
    ln_1: LayerNorm,
    attn: CausalSelfAttention,
    ln_2: LayerNorm,
    mlp: Mlp,
    post_norm: bool,
    residual: bool,
}

impl Block {
    fn new(cfg: &Config, rope: Option<RopeTables>, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            ln_1: LayerNorm::new(cfg.n_embd, cfg, vb.pp("ln_1"))?,
            attn: CausalSelfAttention::new(cfg, rope, vb.pp("attn"))?,
            ln_2: LayerNorm::new(cfg.n_embd, cfg, vb.pp("ln_2"))?,
            mlp: Mlp::new(cfg, vb.pp("mlp"))?,
            post_norm: cfg.norm_placement == NormPlacement::Post,
            residual: cfg.residual,
        })
    }

    /// One sub-layer `f` around the residual stream `xs`:
    /// pre-norm `x + f(ln(x))` (GPT-2), post-norm `ln(x + f(x))` (Vaswani et al.), and
    /// without the residual `f(ln(x))` or `ln(f(x))`.
    fn sublayer(
        &self,
        xs: &Tensor,
        ln: &LayerNorm,
        f: impl FnOnce(&Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        if self.post_norm {
            let ys = f(xs)?;
            let ys = if self.residual { (xs + ys)? } else { ys };
            ln.forward(&ys)
        } else {
            let ys = f(&ln.forward(xs)?)?;
            Ok(if self.residual { (xs + ys)? } else { ys })
        }
    }

    // x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))   (pre-norm, the default)
    fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let xs = self.sublayer(xs, &self.ln_1, |x| self.attn.forward(x, train))?;
        self.sublayer(&xs, &self.ln_2, |x| self.mlp.forward(x, train))
    }

    fn forward_cached(&self, xs: &Tensor, cache: &mut KvCache, layer: usize) -> Result<Tensor> {
        let xs = self.sublayer(xs, &self.ln_1, |x| {
            self.attn.forward_cached(x, cache, layer)
        })?;
        self.sublayer(&xs, &self.ln_2, |x| self.mlp.forward(x, false))
    }

    /// What the attention sub-layer reads: `ln_1(x)` with pre-norm, `x` with post-norm.
    fn attn_input(&self, xs: &Tensor) -> Result<Tensor> {
        if self.post_norm {
            Ok(xs.clone())
        } else {
            self.ln_1.forward(xs)
        }
    }
}

/// The language model: token ids `(b, t)` in, next-token logits `(b, t, vocab_size)` out.
pub struct Gpt {
    wte: Embedding,
    /// The learned position table (GPT-2), or the fixed sinusoidal one; `None` for RoPE and
    /// ALiBi, which act inside attention instead.
    wpe: Option<Embedding>,
    h: Vec<Block>,
    ln_f: LayerNorm,
    config: Config,
}

impl Gpt {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let init = candle_nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let wte = vb.get_with_hints((cfg.vocab_size, cfg.n_embd), "wte.weight", init)?;
        let wpe = match cfg.position {
            PositionEncoding::Learned => {
                Some(vb.get_with_hints((cfg.block_size, cfg.n_embd), "wpe.weight", init)?)
            }
            // A constant, not a parameter: it is not in the checkpoint.
            PositionEncoding::Sinusoidal => Some(position::sinusoidal_table(
                cfg.block_size,
                cfg.n_embd,
                vb.dtype(),
                vb.device(),
            )?),
            PositionEncoding::Rope | PositionEncoding::Alibi => None,
        };
        let rope = match cfg.position {
            PositionEncoding::Rope => Some(RopeTables::new(
                cfg.block_size,
                cfg.head_dim(),
                vb.dtype(),
                vb.device(),
            )?),
            _ => None,
        };
        let h = (0..cfg.n_layer)
            .map(|i| Block::new(cfg, rope.clone(), vb.pp(format!("h.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            wte: Embedding::new(wte, cfg.n_embd),
            wpe: wpe.map(|w| Embedding::new(w, cfg.n_embd)),
            h,
            ln_f: LayerNorm::new(cfg.n_embd, cfg, vb.pp("ln_f"))?,
            config: cfg.clone(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn device(&self) -> &Device {
        self.wte.embeddings().device()
    }

    /// Token plus position embeddings for `idx` placed at positions `offset..offset + t`.
    fn embed(&self, idx: &Tensor, offset: usize, train: bool) -> Result<Tensor> {
        let (_, seq_len) = idx.dims2()?;
        if offset + seq_len > self.config.block_size {
            return Err(Error::config(
                "block_size",
                format!(
                    "sequence of {} tokens is longer than the model's context of {}",
                    offset + seq_len,
                    self.config.block_size
                ),
            ));
        }
        let tok_emb = self.wte.forward(idx)?; // (b, t, c)
        let xs = match &self.wpe {
            Some(wpe) => {
                let pos = Tensor::arange(offset as u32, (offset + seq_len) as u32, idx.device())?;
                tok_emb.broadcast_add(&wpe.forward(&pos)?)? // + (t, c)
            }
            None => tok_emb,
        };
        dropout(&xs, self.config.dropout, train)
    }

    /// The head shares its weight with `wte` (Press & Wolf, 2017): logits = ln_f(x) Wteᵀ.
    fn head(&self, xs: &Tensor) -> Result<Tensor> {
        let (b_sz, seq_len, c) = xs.dims3()?;
        let xs = self.ln_f.forward(xs)?.reshape((b_sz * seq_len, c))?;
        // A plain 2-D matmul: candle's broadcast matmul is much slower on the CPU.
        let logits = xs.matmul(&self.wte.embeddings().t()?)?; // (b·t, vocab)
        Ok(logits.reshape((b_sz, seq_len, ()))?) // (b, t, vocab)
    }

    /// The residual stream after the last block, `(b, t, c)`. With a cache, `idx` holds the
    /// tokens that follow the cached positions, and their keys and values are appended.
    fn hidden(&self, idx: &Tensor, cache: Option<&mut KvCache>, train: bool) -> Result<Tensor> {
        let offset = cache.as_ref().map_or(0, |c| c.len());
        let mut xs = self.embed(idx, offset, train)?;
        match cache {
            None => {
                for block in &self.h {
                    xs = block.forward(&xs, train)?;
                }
            }
            Some(cache) => {
                for (i, block) in self.h.iter().enumerate() {
                    xs = block.forward_cached(&xs, cache, i)?;
                }
            }
        }
        Ok(xs)
    }

    /// Logits for every position and, given targets `(b, t)`, the mean cross-entropy loss.
    pub fn forward(
        &self,
        idx: &Tensor,
        targets: Option<&Tensor>,
        train: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let logits = self.head(&self.hidden(idx, None, train)?)?;
        let loss = match targets {
            Some(targets) => {
                let (b_sz, seq_len, vocab) = logits.dims3()?;
                let flat = logits.reshape((b_sz * seq_len, vocab))?;
                Some(candle_nn::loss::cross_entropy(
                    &flat,
                    &targets.flatten_all()?,
                )?)
            }
            None => None,
        };
        Ok((logits, loss))
    }

    /// Logits `(b, t, vocab)` for new tokens `idx` that follow the positions already in
    /// `cache`, appending their keys and values to it.
    pub fn forward_cached(&self, idx: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        self.head(&self.hidden(idx, Some(cache), false)?)
    }

    /// Logits `(b, vocab)` of the token after the last of `idx`: all that generation needs,
    /// so the head runs on the last position only (nanoGPT's inference shortcut).
    pub fn next_logits(&self, idx: &Tensor, cache: Option<&mut KvCache>) -> Result<Tensor> {
        let xs = self.hidden(idx, cache, false)?;
        let seq_len = xs.dim(1)?;
        let last = xs.narrow(1, seq_len - 1, 1)?; // (b, 1, c)
        Ok(self.head(&last)?.squeeze(1)?)
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.config.n_layer)
    }

    /// Attention weights of every layer, each `(n_head, t, t)`, for a single sequence.
    pub fn attention_maps(&self, idx: &[u32]) -> Result<Vec<Tensor>> {
        let idx = Tensor::new(idx, self.device())?.unsqueeze(0)?;
        let mut xs = self.embed(&idx, 0, false)?;
        let mut maps = Vec::with_capacity(self.h.len());
        for block in &self.h {
            maps.push(block.attn.weights(&block.attn_input(&xs)?)?.squeeze(0)?);
            xs = block.forward(&xs, false)?;
        }
        Ok(maps)
    }
}

/// Mean cross-entropy of predicting `targets` from `idx` without building a graph.
pub fn loss_no_grad(model: &Gpt, idx: &Tensor, targets: &Tensor) -> Result<f32> {
    let (_, loss) = model.forward(idx, Some(targets), false)?;
    let loss = loss.expect("targets were given");
    Ok(loss.detach().to_dtype(DType::F32)?.to_scalar::<f32>()?)
}
