//! BERT: a bidirectional transformer encoder trained as a masked language model.
//!
//! Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language
//! Understanding" (2019), in the form of Hugging Face's `BertForMaskedLM` and candle's
//! `candle-transformers/src/models/bert.rs`: token and learned position embeddings, a stack of
//! encoder blocks whose self-attention has no causal mask (every position sees every other,
//! only padding is hidden), and an MLM head (dense, GELU, LayerNorm, then the token embedding
//! transposed plus a bias) that predicts the tokens hidden behind `[MASK]`.
//!
//! Two departures from the paper, both to keep it comparable with our GPT (`gpt.rs`): the
//! blocks are pre-norm (`x + f(ln(x))`, as GPT-2 and ModernBERT) instead of BERT's post-norm,
//! which trains a small model without BERT's long warm-up, and there is no segment embedding
//! or next-sentence objective (RoBERTa showed MLM alone is enough). Tensor names follow our
//! GPT (`wte`, `h.{i}.attn.c_attn`, `ln_f`) so the lesson can set the two side by side; HF's
//! `word_embeddings`, `attention.self.query`… differ only in name.
//!
//! The vocabulary is the character tokenizer's plus one token, `[MASK]`, appended last.

use candle_core::{D, DType, Device, IndexOp, Module, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::attention::{self, additive_mask};
use crate::{Error, Result};

/// `format` of a BERT checkpoint's `config.json` (`checkpoint::ArchCheckpoint`).
pub const FORMAT: &str = "attention-workshop/bert";

/// The shape of a BERT (field names as our GPT's `Config`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Characters plus `[MASK]`.
    pub vocab_size: usize,
    /// Longest input (BERT's `max_position_embeddings`).
    pub block_size: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// Width of the residual stream (`hidden_size`).
    pub n_embd: usize,
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        for (field, value) in [
            ("vocab_size", self.vocab_size),
            ("block_size", self.block_size),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_embd", self.n_embd),
        ] {
            if value == 0 {
                return Err(Error::config(field, "must be greater than 0"));
            }
        }
        if self.vocab_size < 2 {
            return Err(Error::config(
                "vocab_size",
                "needs at least one character besides [MASK]",
            ));
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
        Ok(())
    }

    /// The id of `[MASK]`: the last one.
    pub fn mask_id(&self) -> u32 {
        (self.vocab_size - 1) as u32
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Number of parameters (the tied decoder counted once).
    pub fn n_params(&self) -> usize {
        let (c, v, t, l) = (self.n_embd, self.vocab_size, self.block_size, self.n_layer);
        let ln = 2 * c;
        let block =
            2 * ln + (3 * c * c + 3 * c) + (c * c + c) + (4 * c * c + 4 * c) + (4 * c * c + c);
        v * c + t * c + l * block + ln + (c * c + c) + ln + v
    }
}

/// The encoder's self-attention mask, `allowed[i][j]`: every query sees every key that is not
/// padding, before and after it. This is the whole difference from a GPT's causal mask.
pub fn attention_mask(padding: &[bool]) -> Vec<Vec<bool>> {
    let row: Vec<bool> = padding.iter().map(|&pad| !pad).collect();
    vec![row; padding.len()]
}

/// LayerNorm from primitive ops (so it has a backward pass): `(x - mean) / sqrt(var + eps) * w + b`.
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

impl LayerNorm {
    /// BERT's `layer_norm_eps`.
    const EPS: f64 = 1e-12;

    fn new(size: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(size, "weight", candle_nn::Init::Const(1.0))?,
            bias: vb.get_with_hints(size, "bias", candle_nn::Init::Const(0.0))?,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mean = xs.mean_keepdim(D::Minus1)?;
        let xs = xs.broadcast_sub(&mean)?;
        let var = xs.sqr()?.mean_keepdim(D::Minus1)?;
        let xs = xs.broadcast_div(&(var + Self::EPS)?.sqrt()?)?;
        Ok(xs.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)?)
    }
}

fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let init = candle_nn::Init::Randn {
        mean: 0.0,
        stdev: 0.02,
    };
    let weight = vb.get_with_hints((out_dim, in_dim), "weight", init)?;
    let bias = vb.get_with_hints(out_dim, "bias", candle_nn::Init::Const(0.0))?;
    Ok(Linear::new(weight, Some(bias)))
}

/// Multi-head self-attention under an additive mask (Vaswani et al. 2017 §3.2).
struct SelfAttention {
    c_attn: Linear,
    c_proj: Linear,
    n_head: usize,
    head_dim: usize,
}

impl SelfAttention {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let c = cfg.n_embd;
        Ok(Self {
            c_attn: linear(c, 3 * c, vb.pp("c_attn"))?,
            c_proj: linear(c, c, vb.pp("c_proj"))?,
            n_head: cfg.n_head,
            head_dim: cfg.head_dim(),
        })
    }

    /// Attention weights `(b, n_head, t, t)` and values `(b, n_head, t, head_dim)`.
    fn weights_and_values(&self, xs: &Tensor, mask: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b_sz, seq_len, c) = xs.dims3()?;
        let qkv = self.c_attn.forward(xs)?; // (b, t, 3c)
        let split = |i: usize| -> Result<Tensor> {
            Ok(qkv
                .narrow(2, i * c, c)?
                .reshape((b_sz, seq_len, self.n_head, self.head_dim))?
                .transpose(1, 2)? // (b, n_head, t, head_dim)
                .contiguous()?)
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        Ok((attention::weights(&q, &k, Some(mask))?, v))
    }

    fn forward(&self, xs: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b_sz, seq_len, c) = xs.dims3()?;
        let (att, v) = self.weights_and_values(xs, mask)?;
        let ys = att
            .matmul(&v)? // (b, n_head, t, head_dim)
            .transpose(1, 2)? // (b, t, n_head, head_dim)
            .reshape((b_sz, seq_len, c))?;
        Ok(self.c_proj.forward(&ys)?)
    }
}

/// `c_proj(gelu(c_fc(x)))`, hidden width 4·n_embd (BERT's `intermediate` and `output`).
struct Mlp {
    c_fc: Linear,
    c_proj: Linear,
}

impl Mlp {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let c = cfg.n_embd;
        Ok(Self {
            c_fc: linear(c, 4 * c, vb.pp("c_fc"))?,
            c_proj: linear(4 * c, c, vb.pp("c_proj"))?,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let hidden = self.c_fc.forward(xs)?.gelu_erf()?; // (b, t, 4c)
        Ok(self.c_proj.forward(&hidden)?) // (b, t, c)
    }
}

struct Block {
    ln_1: LayerNorm,
    attn: SelfAttention,
    ln_2: LayerNorm,
    mlp: Mlp,
}

impl Block {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            ln_1: LayerNorm::new(cfg.n_embd, vb.pp("ln_1"))?,
            attn: SelfAttention::new(cfg, vb.pp("attn"))?,
            ln_2: LayerNorm::new(cfg.n_embd, vb.pp("ln_2"))?,
            mlp: Mlp::new(cfg, vb.pp("mlp"))?,
        })
    }

    // x = x + attn(ln_1(x), mask); x = x + mlp(ln_2(x))
    fn forward(&self, xs: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let xs = (xs + self.attn.forward(&self.ln_1.forward(xs)?, mask)?)?;
        Ok((&xs + self.mlp.forward(&self.ln_2.forward(&xs)?)?)?)
    }
}

/// BERT's MLM head: `LayerNorm(gelu(dense(x))) Wteᵀ + b`.
struct MlmHead {
    dense: Linear,
    ln: LayerNorm,
    bias: Tensor,
}

/// The masked language model: ids `(b, t)` in, logits `(b, t, vocab_size)` out.
pub struct Bert {
    wte: Embedding,
    wpe: Embedding,
    h: Vec<Block>,
    ln_f: LayerNorm,
    mlm: MlmHead,
    config: Config,
}

impl Bert {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let init = candle_nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let wte = vb.get_with_hints((cfg.vocab_size, cfg.n_embd), "wte.weight", init)?;
        let wpe = vb.get_with_hints((cfg.block_size, cfg.n_embd), "wpe.weight", init)?;
        let h = (0..cfg.n_layer)
            .map(|i| Block::new(cfg, vb.pp(format!("h.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let mlm = MlmHead {
            dense: linear(cfg.n_embd, cfg.n_embd, vb.pp("mlm.dense"))?,
            ln: LayerNorm::new(cfg.n_embd, vb.pp("mlm.ln"))?,
            bias: vb.get_with_hints(cfg.vocab_size, "mlm.bias", candle_nn::Init::Const(0.0))?,
        };
        Ok(Self {
            wte: Embedding::new(wte, cfg.n_embd),
            wpe: Embedding::new(wpe, cfg.n_embd),
            h,
            ln_f: LayerNorm::new(cfg.n_embd, vb.pp("ln_f"))?,
            mlm,
            config: cfg.clone(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn device(&self) -> &Device {
        self.wte.embeddings().device()
    }

    /// The additive form of [`attention_mask`], `(b, 1, t, t)`, from a padding flag per
    /// position (`None`: no padding).
    fn additive(&self, padding: Option<&[Vec<bool>]>, b_sz: usize, t: usize) -> Result<Tensor> {
        let dtype = self.wte.embeddings().dtype();
        let rows = match padding {
            Some(padding) => padding
                .iter()
                .map(|p| additive_mask(&attention_mask(p), dtype, self.device()))
                .collect::<Result<Vec<_>>>()?,
            None => {
                vec![additive_mask(&attention_mask(&vec![false; t]), dtype, self.device())?; b_sz]
            }
        };
        Ok(Tensor::stack(&rows, 0)?.unsqueeze(1)?) // (b, 1, t, t)
    }

    /// The final hidden states `(b, t, c)`; `padding[b][j]` marks key `j` of row `b` as padding.
    fn hidden(&self, idx: &Tensor, padding: Option<&[Vec<bool>]>) -> Result<Tensor> {
        let (b_sz, seq_len) = idx.dims2()?;
        if seq_len > self.config.block_size {
            return Err(Error::config(
                "block_size",
                format!(
                    "input of {seq_len} tokens is longer than the model's {}",
                    self.config.block_size
                ),
            ));
        }
        let mask = self.additive(padding, b_sz, seq_len)?;
        let pos = Tensor::arange(0u32, seq_len as u32, idx.device())?;
        let mut xs = self
            .wte
            .forward(idx)?
            .broadcast_add(&self.wpe.forward(&pos)?)?; // (b, t, c)
        for block in &self.h {
            xs = block.forward(&xs, &mask)?;
        }
        self.ln_f.forward(&xs)
    }

    /// The MLM head on hidden states `(n, c)`: logits `(n, vocab)`.
    fn head(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = self.mlm.dense.forward(xs)?.gelu_erf()?;
        let xs = self.mlm.ln.forward(&xs)?;
        // Tied to the input embedding, as BERT's decoder is.
        Ok(xs
            .matmul(&self.wte.embeddings().t()?)?
            .broadcast_add(&self.mlm.bias)?)
    }

    /// Logits `(b, t, vocab)` at every position.
    pub fn forward(&self, idx: &Tensor, padding: Option<&[Vec<bool>]>) -> Result<Tensor> {
        let xs = self.hidden(idx, padding)?;
        let (b_sz, seq_len, c) = xs.dims3()?;
        let logits = self.head(&xs.reshape((b_sz * seq_len, c))?)?; // (b·t, vocab)
        Ok(logits.reshape((b_sz, seq_len, ()))?)
    }

    /// The MLM loss: mean cross-entropy over the masked positions only (flat indices into
    /// `b·t`), and the fraction of them predicted exactly.
    pub fn mlm_loss(&self, batch: &MlmBatch) -> Result<(Tensor, f32)> {
        let device = self.device();
        let (b_sz, t) = (batch.batch_size, batch.block_size);
        let idx = Tensor::from_vec(batch.input.clone(), (b_sz, t), device)?;
        let xs = self.hidden(&idx, None)?.reshape((b_sz * t, ()))?; // (b·t, c)
        let positions = Tensor::new(batch.positions.as_slice(), device)?;
        // The head runs only where there is something to predict: 15% of the positions.
        let logits = self.head(&xs.index_select(&positions, 0)?)?; // (n_masked, vocab)
        let labels = Tensor::new(batch.labels.as_slice(), device)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
        let predicted = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
        let right = predicted
            .iter()
            .zip(&batch.labels)
            .filter(|(p, l)| p == l)
            .count();
        Ok((loss, right as f32 / batch.labels.len().max(1) as f32))
    }

    /// Attention weights of every layer, each `(n_head, t, t)`, for one unpadded sequence.
    pub fn attention_maps(&self, idx: &[u32]) -> Result<Vec<Tensor>> {
        let idx = Tensor::new(idx, self.device())?.unsqueeze(0)?;
        let (b_sz, seq_len) = idx.dims2()?;
        let mask = self.additive(None, b_sz, seq_len)?;
        let pos = Tensor::arange(0u32, seq_len as u32, idx.device())?;
        let mut xs = self
            .wte
            .forward(&idx)?
            .broadcast_add(&self.wpe.forward(&pos)?)?;
        let mut maps = Vec::with_capacity(self.h.len());
        for block in &self.h {
            let (att, _) = block
                .attn
                .weights_and_values(&block.ln_1.forward(&xs)?, &mask)?;
            maps.push(att.i(0)?);
            xs = block.forward(&xs, &mask)?;
        }
        Ok(maps)
    }

    /// The `k` most likely tokens at position `at` of `idx`, with their probabilities.
    pub fn fill(&self, idx: &[u32], at: usize, k: usize) -> Result<Vec<(u32, f32)>> {
        let logits = self.forward(&Tensor::new(idx, self.device())?.unsqueeze(0)?, None)?;
        let probs = candle_nn::ops::softmax(&logits.i((0, at))?, D::Minus1)?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?;
        let mut ranked: Vec<(u32, f32)> = probs
            .into_iter()
            .enumerate()
            // [MASK] is never an answer; it only ever appears in inputs.
            .filter(|&(id, _)| id as u32 != self.config.mask_id())
            .map(|(id, p)| (id as u32, p))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked.truncate(k);
        Ok(ranked)
    }
}

/// A batch for masked language modelling: windows of the corpus with 15% of their positions
/// chosen for prediction (BERT §3.1, "Task #1: Masked LM").
#[derive(Clone, Debug, PartialEq)]
pub struct MlmBatch {
    pub batch_size: usize,
    pub block_size: usize,
    /// The corrupted ids, `batch_size · block_size`, row-major.
    pub input: Vec<u32>,
    /// Flat indices of the chosen positions.
    pub positions: Vec<u32>,
    /// The original ids at those positions: what the model must predict.
    pub labels: Vec<u32>,
}

/// The fraction of positions BERT predicts.
pub const MASK_RATE: f64 = 0.15;

/// Corrupts windows `ids` (`batch_size · block_size`) for MLM. Each position is chosen with
/// probability 15% (at least one per batch); a chosen token becomes `[MASK]` 80% of the time,
/// a random character 10% and stays itself 10%. The random and unchanged cases keep the model
/// from learning that only `[MASK]` positions matter, since fine-tuning never shows `[MASK]`
/// (BERT §3.1 and appendix C.2).
pub fn mask_tokens(
    ids: &[u32],
    batch_size: usize,
    block_size: usize,
    mask_id: u32,
    rng: &mut impl Rng,
) -> MlmBatch {
    let mut input = ids.to_vec();
    let (mut positions, mut labels) = (Vec::new(), Vec::new());
    for (i, id) in input.iter_mut().enumerate() {
        if !rng.random_bool(MASK_RATE) {
            continue;
        }
        positions.push(i as u32);
        labels.push(*id);
        let roll: f64 = rng.random();
        if roll < 0.8 {
            *id = mask_id;
        } else if roll < 0.9 {
            // Any character, never [MASK] itself (ids 0..mask_id).
            *id = rng.random_range(0..mask_id);
        }
    }
    if positions.is_empty() && !input.is_empty() {
        let i = rng.random_range(0..input.len());
        positions.push(i as u32);
        labels.push(input[i]);
        input[i] = mask_id;
    }
    MlmBatch {
        batch_size,
        block_size,
        input,
        positions,
        labels,
    }
}
