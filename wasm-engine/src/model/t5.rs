//! T5: an encoder-decoder transformer for text-to-text tasks.
//!
//! Raffel et al., "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
//! Transformer" (T5, 2020), in the form of Hugging Face's `T5ForConditionalGeneration` and
//! candle's `candle-transformers/src/models/t5.rs`: a shared token embedding; an encoder whose
//! self-attention sees the whole source (only padding is hidden); a decoder whose
//! self-attention is causal and whose cross-attention (`EncDecAttention`) reads the encoder's
//! output; RMSNorm (`T5LayerNorm`: no mean, no bias) before every sub-layer (pre-norm); ReLU
//! feed-forward (`DenseReluDense`, T5 v1.0); no biases anywhere; the head tied to the
//! embedding (without T5's `d_model^-1/2` rescaling; see `decode`).
//!
//! Positions: **learned absolute positions** (a `wpe` table per stack, added to the token
//! embeddings) instead of T5's bucketed relative position bias. Our sources and targets are
//! short (numbers in words, at most about 50 characters), so a table is small and learns
//! quickly, and the three models of lesson C4 then share one position mechanism, so that
//! what differs between them is only the masks and the objective. The relative bias would add
//! a learned `(buckets, heads)` table in the first block's attention, added to the scores.
//!
//! Tensor names follow Hugging Face's T5 (`shared`, `encoder.block.{i}.layer.0.SelfAttention.q`,
//! `decoder.block.{i}.layer.1.EncDecAttention.o`, `layer.2.DenseReluDense.wi`,
//! `final_layer_norm`); `encoder.wpe` and `decoder.wpe` are ours.
//!
//! Token ids: 0 is padding (and, as in T5, the decoder's start token), 1 is end of sequence,
//! and the characters of the tokenizer follow from 2.

use candle_core::{D, DType, Device, IndexOp, Module, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::attention::{self, additive_mask};
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// Padding, and the first input of the decoder (T5's `decoder_start_token_id`).
pub const PAD: u32 = 0;
/// End of sequence: the decoder says it is done.
pub const EOS: u32 = 1;
/// Ids before the first character.
pub const N_SPECIAL: u32 = 2;

/// `format` of a T5 checkpoint's `config.json` (`checkpoint::ArchCheckpoint`).
pub const FORMAT: &str = "attention-workshop/t5";

/// The shape of a T5. Field names are Hugging Face's `T5Config`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Characters plus the two special tokens.
    pub vocab_size: usize,
    /// Longest source and longest target (with EOS / the start token).
    pub n_positions: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Hidden width of the feed-forward network.
    pub d_ff: usize,
    /// Encoder blocks.
    pub num_layers: usize,
    pub num_decoder_layers: usize,
    pub num_heads: usize,
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        for (field, value) in [
            ("vocab_size", self.vocab_size),
            ("n_positions", self.n_positions),
            ("d_model", self.d_model),
            ("d_ff", self.d_ff),
            ("num_layers", self.num_layers),
            ("num_decoder_layers", self.num_decoder_layers),
            ("num_heads", self.num_heads),
        ] {
            if value == 0 {
                return Err(Error::config(field, "must be greater than 0"));
            }
        }
        if self.vocab_size <= N_SPECIAL as usize {
            return Err(Error::config(
                "vocab_size",
                "needs at least one character besides padding and end of sequence",
            ));
        }
        if !self.d_model.is_multiple_of(self.num_heads) {
            return Err(Error::config(
                "d_model",
                format!(
                    "width {} is not divisible by num_heads {}; choose a width that is a multiple of the head count",
                    self.d_model, self.num_heads
                ),
            ));
        }
        Ok(())
    }

    /// Width of one head (T5's `d_kv`).
    pub fn d_kv(&self) -> usize {
        self.d_model / self.num_heads
    }

    pub fn n_params(&self) -> usize {
        let (d, f, v, p) = (self.d_model, self.d_ff, self.vocab_size, self.n_positions);
        let attn = 4 * d * d;
        let ffn = 2 * d * f;
        let enc = d + attn + d + ffn;
        let dec = d + attn + d + attn + d + ffn;
        v * d + 2 * p * d + self.num_layers * enc + self.num_decoder_layers * dec + 2 * d
    }
}

/// The encoder's self-attention mask: every source position sees every non-padding one.
pub fn encoder_mask(src_padding: &[bool]) -> Vec<Vec<bool>> {
    let row: Vec<bool> = src_padding.iter().map(|&pad| !pad).collect();
    vec![row; src_padding.len()]
}

/// The decoder's self-attention mask: causal (key `j ≤` query `i`), and never a padding key.
pub fn decoder_mask(tgt_padding: &[bool]) -> Vec<Vec<bool>> {
    (0..tgt_padding.len())
        .map(|i| {
            tgt_padding
                .iter()
                .enumerate()
                .map(|(j, &pad)| j <= i && !pad)
                .collect()
        })
        .collect()
}

/// The cross-attention mask `(t_dec, t_enc)`: every decoder position sees every non-padding
/// encoder position. It is not causal: the whole source is known before decoding starts.
pub fn cross_mask(t_dec: usize, src_padding: &[bool]) -> Vec<Vec<bool>> {
    let row: Vec<bool> = src_padding.iter().map(|&pad| !pad).collect();
    vec![row; t_dec]
}

/// Source or target text to model ids (characters shifted past the special tokens).
pub fn encode(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    Ok(tokenizer
        .encode(text)?
        .into_iter()
        .map(|id| id + N_SPECIAL)
        .collect())
}

/// Model ids to text, stopping at the first EOS and skipping padding.
pub fn decode(tokenizer: &Tokenizer, ids: &[u32]) -> Result<String> {
    let chars: Vec<u32> = ids
        .iter()
        .take_while(|&&id| id != EOS)
        .filter(|&&id| id >= N_SPECIAL)
        .map(|id| id - N_SPECIAL)
        .collect();
    tokenizer.decode(&chars)
}

/// T5's `T5LayerNorm`, i.e. RMSNorm (Zhang & Sennrich 2019): `x / sqrt(mean(x²) + eps) * w`.
struct RmsNorm {
    weight: Tensor,
}

impl RmsNorm {
    /// T5's `layer_norm_epsilon`.
    const EPS: f64 = 1e-6;

    fn new(size: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(size, "weight", candle_nn::Init::Const(1.0))?,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let ms = xs.sqr()?.mean_keepdim(D::Minus1)?;
        let xs = xs.broadcast_div(&(ms + Self::EPS)?.sqrt()?)?;
        Ok(xs.broadcast_mul(&self.weight)?)
    }
}

fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let init = candle_nn::Init::Randn {
        mean: 0.0,
        stdev: 0.02,
    };
    Ok(Linear::new(
        vb.get_with_hints((out_dim, in_dim), "weight", init)?,
        None,
    ))
}

/// Multi-head attention of queries from `xs` over keys and values from `kv`: self-attention
/// when they are the same sequence, cross-attention when `kv` is the encoder's output.
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    n_head: usize,
    d_kv: usize,
}

impl Attention {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let d = cfg.d_model;
        Ok(Self {
            q: linear(d, d, vb.pp("q"))?,
            k: linear(d, d, vb.pp("k"))?,
            v: linear(d, d, vb.pp("v"))?,
            o: linear(d, d, vb.pp("o"))?,
            n_head: cfg.num_heads,
            d_kv: cfg.d_kv(),
        })
    }

    fn heads(&self, xs: &Tensor) -> Result<Tensor> {
        let (b_sz, seq_len, _) = xs.dims3()?;
        Ok(xs
            .reshape((b_sz, seq_len, self.n_head, self.d_kv))?
            .transpose(1, 2)? // (b, n_head, t, d_kv)
            .contiguous()?)
    }

    /// Weights `(b, n_head, t_q, t_k)` and values `(b, n_head, t_k, d_kv)`.
    fn weights_and_values(
        &self,
        xs: &Tensor,
        kv: &Tensor,
        mask: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let q = self.heads(&self.q.forward(xs)?)?; // (b, n_head, t_q, d_kv)
        let k = self.heads(&self.k.forward(kv)?)?; // (b, n_head, t_k, d_kv)
        let v = self.heads(&self.v.forward(kv)?)?;
        Ok((attention::weights(&q, &k, Some(mask))?, v))
    }

    fn forward(&self, xs: &Tensor, kv: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b_sz, t_q, d) = xs.dims3()?;
        let (att, v) = self.weights_and_values(xs, kv, mask)?;
        let ys = att
            .matmul(&v)? // (b, n_head, t_q, d_kv)
            .transpose(1, 2)? // (b, t_q, n_head, d_kv)
            .reshape((b_sz, t_q, d))?;
        Ok(self.o.forward(&ys)?)
    }
}

/// T5's `DenseReluDense`: `wo(relu(wi(x)))`.
struct DenseReluDense {
    wi: Linear,
    wo: Linear,
}

impl DenseReluDense {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            wi: linear(cfg.d_model, cfg.d_ff, vb.pp("wi"))?,
            wo: linear(cfg.d_ff, cfg.d_model, vb.pp("wo"))?,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let hidden = self.wi.forward(xs)?.relu()?; // (b, t, d_ff)
        Ok(self.wo.forward(&hidden)?) // (b, t, d_model)
    }
}

struct EncoderBlock {
    /// `layer.0`
    self_norm: RmsNorm,
    self_attn: Attention,
    /// `layer.1`
    ff_norm: RmsNorm,
    ff: DenseReluDense,
}

impl EncoderBlock {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            self_norm: RmsNorm::new(cfg.d_model, vb.pp("layer.0.layer_norm"))?,
            self_attn: Attention::new(cfg, vb.pp("layer.0.SelfAttention"))?,
            ff_norm: RmsNorm::new(cfg.d_model, vb.pp("layer.1.layer_norm"))?,
            ff: DenseReluDense::new(cfg, vb.pp("layer.1.DenseReluDense"))?,
        })
    }

    // x = x + self_attn(norm(x), mask_enc); x = x + ff(norm(x))
    fn forward(&self, xs: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let h = self.self_norm.forward(xs)?;
        let xs = (xs + self.self_attn.forward(&h, &h, mask)?)?;
        Ok((&xs + self.ff.forward(&self.ff_norm.forward(&xs)?)?)?)
    }
}

struct DecoderBlock {
    /// `layer.0`
    self_norm: RmsNorm,
    self_attn: Attention,
    /// `layer.1`
    cross_norm: RmsNorm,
    cross_attn: Attention,
    /// `layer.2`
    ff_norm: RmsNorm,
    ff: DenseReluDense,
}

impl DecoderBlock {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            self_norm: RmsNorm::new(cfg.d_model, vb.pp("layer.0.layer_norm"))?,
            self_attn: Attention::new(cfg, vb.pp("layer.0.SelfAttention"))?,
            cross_norm: RmsNorm::new(cfg.d_model, vb.pp("layer.1.layer_norm"))?,
            cross_attn: Attention::new(cfg, vb.pp("layer.1.EncDecAttention"))?,
            ff_norm: RmsNorm::new(cfg.d_model, vb.pp("layer.2.layer_norm"))?,
            ff: DenseReluDense::new(cfg, vb.pp("layer.2.DenseReluDense"))?,
        })
    }

    // y = y + self_attn(norm(y), mask_causal)
    // y = y + cross_attn(norm(y), enc, mask_cross)
    // y = y + ff(norm(y))
    fn forward(&self, ys: &Tensor, enc: &Tensor, masks: &DecoderMasks) -> Result<Tensor> {
        let h = self.self_norm.forward(ys)?;
        let ys = (ys + self.self_attn.forward(&h, &h, &masks.self_mask)?)?;
        let h = self.cross_norm.forward(&ys)?;
        let ys = (&ys + self.cross_attn.forward(&h, enc, &masks.cross)?)?;
        Ok((&ys + self.ff.forward(&self.ff_norm.forward(&ys)?)?)?)
    }
}

/// The decoder's two additive masks, `(b, 1, t_dec, t_dec)` and `(b, 1, t_dec, t_enc)`.
struct DecoderMasks {
    self_mask: Tensor,
    cross: Tensor,
}

/// One stack's position table and blocks.
struct Stack<B> {
    wpe: Embedding,
    block: Vec<B>,
    final_layer_norm: RmsNorm,
}

/// The encoder-decoder: source ids `(b, s)` and decoder inputs `(b, t)` in, logits
/// `(b, t, vocab_size)` of each next target token out.
pub struct T5 {
    shared: Embedding,
    encoder: Stack<EncoderBlock>,
    decoder: Stack<DecoderBlock>,
    config: Config,
}

/// Masks as a batch of additive tensors `(b, 1, t_q, t_k)`.
fn stack_masks(masks: &[Vec<Vec<bool>>], dtype: DType, device: &Device) -> Result<Tensor> {
    let rows = masks
        .iter()
        .map(|m| additive_mask(m, dtype, device))
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::stack(&rows, 0)?.unsqueeze(1)?)
}

impl T5 {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let init = candle_nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let shared = vb.get_with_hints((cfg.vocab_size, cfg.d_model), "shared.weight", init)?;
        let wpe = |vb: VarBuilder| -> Result<Embedding> {
            let w = vb.get_with_hints((cfg.n_positions, cfg.d_model), "wpe.weight", init)?;
            Ok(Embedding::new(w, cfg.d_model))
        };
        let (enc, dec) = (vb.pp("encoder"), vb.pp("decoder"));
        let encoder = Stack {
            wpe: wpe(enc.clone())?,
            block: (0..cfg.num_layers)
                .map(|i| EncoderBlock::new(cfg, enc.pp(format!("block.{i}"))))
                .collect::<Result<Vec<_>>>()?,
            final_layer_norm: RmsNorm::new(cfg.d_model, enc.pp("final_layer_norm"))?,
        };
        let decoder = Stack {
            wpe: wpe(dec.clone())?,
            block: (0..cfg.num_decoder_layers)
                .map(|i| DecoderBlock::new(cfg, dec.pp(format!("block.{i}"))))
                .collect::<Result<Vec<_>>>()?,
            final_layer_norm: RmsNorm::new(cfg.d_model, dec.pp("final_layer_norm"))?,
        };
        Ok(Self {
            shared: Embedding::new(shared, cfg.d_model),
            encoder,
            decoder,
            config: cfg.clone(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn device(&self) -> &Device {
        self.shared.embeddings().device()
    }

    fn dtype(&self) -> DType {
        self.shared.embeddings().dtype()
    }

    /// Token plus position embeddings `(b, t, d)` of one stack.
    fn embed(&self, idx: &Tensor, wpe: &Embedding) -> Result<Tensor> {
        let seq_len = idx.dim(1)?;
        if seq_len > self.config.n_positions {
            return Err(Error::config(
                "n_positions",
                format!(
                    "sequence of {seq_len} tokens is longer than the model's {}",
                    self.config.n_positions
                ),
            ));
        }
        let pos = Tensor::arange(0u32, seq_len as u32, idx.device())?;
        Ok(self
            .shared
            .forward(idx)?
            .broadcast_add(&wpe.forward(&pos)?)?)
    }

    /// The encoder's output `(b, s, d)`; `src_padding[b][j]` marks padding.
    pub fn encode(&self, src: &Tensor, src_padding: &[Vec<bool>]) -> Result<Tensor> {
        let masks: Vec<_> = src_padding.iter().map(|p| encoder_mask(p)).collect();
        let mask = stack_masks(&masks, self.dtype(), self.device())?;
        let mut xs = self.embed(src, &self.encoder.wpe)?;
        for block in &self.encoder.block {
            xs = block.forward(&xs, &mask)?;
        }
        self.encoder.final_layer_norm.forward(&xs)
    }

    fn decoder_masks(
        &self,
        src_padding: &[Vec<bool>],
        tgt_padding: &[Vec<bool>],
    ) -> Result<DecoderMasks> {
        let self_masks: Vec<_> = tgt_padding.iter().map(|p| decoder_mask(p)).collect();
        let cross: Vec<_> = src_padding
            .iter()
            .zip(tgt_padding)
            .map(|(s, t)| cross_mask(t.len(), s))
            .collect();
        Ok(DecoderMasks {
            self_mask: stack_masks(&self_masks, self.dtype(), self.device())?,
            cross: stack_masks(&cross, self.dtype(), self.device())?,
        })
    }

    /// Logits `(b, t, vocab)` for decoder inputs `tgt_in` given the encoder's output.
    pub fn decode(
        &self,
        tgt_in: &Tensor,
        enc: &Tensor,
        src_padding: &[Vec<bool>],
        tgt_padding: &[Vec<bool>],
    ) -> Result<Tensor> {
        let masks = self.decoder_masks(src_padding, tgt_padding)?;
        let mut ys = self.embed(tgt_in, &self.decoder.wpe)?;
        for block in &self.decoder.block {
            ys = block.forward(&ys, enc, &masks)?;
        }
        let ys = self.decoder.final_layer_norm.forward(&ys)?;
        let (b_sz, seq_len, d) = ys.dims3()?;
        // Tied head as GPT-2's. T5 also multiplies by d_model^-1/2 here, which suits its
        // embedding initialised at std 1; ours starts at 0.02 (as GPT-2's), and with the
        // factor the logits stay near 0 for hundreds of steps (measured: loss 1.87 after 300
        // steps on the numbers task, where the unscaled head learns it).
        let ys = ys.reshape((b_sz * seq_len, d))?;
        let logits = ys.matmul(&self.shared.embeddings().t()?)?; // (b·t, vocab)
        Ok(logits.reshape((b_sz, seq_len, ()))?)
    }

    /// Logits `(b, t, vocab)` of a batch.
    pub fn forward(&self, batch: &Seq2SeqBatch) -> Result<Tensor> {
        let (src, tgt_in, _) = batch.tensors(self.device())?;
        let enc = self.encode(&src, &batch.src_padding)?;
        self.decode(&tgt_in, &enc, &batch.src_padding, &batch.tgt_padding)
    }

    /// Mean cross-entropy over the real (non-padding) target tokens, EOS included, and the
    /// fraction of them predicted exactly (teacher forcing).
    pub fn loss(&self, batch: &Seq2SeqBatch) -> Result<(Tensor, f32)> {
        let logits = self.forward(batch)?;
        let (b_sz, t, vocab) = logits.dims3()?;
        let keep: Vec<u32> = (0..b_sz * t)
            .filter(|&i| batch.tgt_out[i] != PAD)
            .map(|i| i as u32)
            .collect();
        let labels: Vec<u32> = keep.iter().map(|&i| batch.tgt_out[i as usize]).collect();
        let keep = Tensor::new(keep.as_slice(), self.device())?;
        let logits = logits.reshape((b_sz * t, vocab))?.index_select(&keep, 0)?; // (n, vocab)
        let loss = candle_nn::loss::cross_entropy(
            &logits,
            &Tensor::new(labels.as_slice(), self.device())?,
        )?;
        let predicted = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
        let right = predicted
            .iter()
            .zip(&labels)
            .filter(|(p, l)| p == l)
            .count();
        Ok((loss, right as f32 / labels.len().max(1) as f32))
    }

    /// Greedy decoding: the encoder runs once, then the decoder is fed its own most likely
    /// token until EOS or `max_len` tokens. `src` is the source's ids (as [`encode`] gives
    /// them; EOS is appended here, as in training). Returns the ids without the start token
    /// and EOS.
    pub fn greedy(&self, src: &[u32], max_len: usize) -> Result<Vec<u32>> {
        let src: Vec<u32> = src.iter().copied().chain([EOS]).collect();
        let src_padding = vec![vec![false; src.len()]];
        let src = Tensor::new(src.as_slice(), self.device())?.unsqueeze(0)?;
        let enc = self.encode(&src, &src_padding)?;
        let mut out = vec![PAD];
        let max_len = max_len.min(self.config.n_positions - 1);
        while out.len() <= max_len {
            let tgt = Tensor::new(out.as_slice(), self.device())?.unsqueeze(0)?;
            let tgt_padding = vec![vec![false; out.len()]];
            let logits = self.decode(&tgt, &enc, &src_padding, &tgt_padding)?;
            let next = logits
                .i((0, out.len() - 1))?
                .argmax(D::Minus1)?
                .to_scalar::<u32>()?;
            if next == EOS {
                break;
            }
            out.push(next);
        }
        Ok(out[1..].to_vec())
    }

    /// Cross-attention weights of every decoder layer, each `(n_head, t_dec, t_enc)`, for one
    /// source (ids with its EOS) and the decoder inputs `tgt_in` (start token first).
    pub fn cross_attention_maps(&self, src: &[u32], tgt_in: &[u32]) -> Result<Vec<Tensor>> {
        let src_padding = vec![vec![false; src.len()]];
        let tgt_padding = vec![vec![false; tgt_in.len()]];
        let src = Tensor::new(src, self.device())?.unsqueeze(0)?;
        let enc = self.encode(&src, &src_padding)?;
        let masks = self.decoder_masks(&src_padding, &tgt_padding)?;
        let tgt = Tensor::new(tgt_in, self.device())?.unsqueeze(0)?;
        let mut ys = self.embed(&tgt, &self.decoder.wpe)?;
        let mut maps = Vec::with_capacity(self.decoder.block.len());
        for block in &self.decoder.block {
            let h = block.self_norm.forward(&ys)?;
            let after_self = (&ys + block.self_attn.forward(&h, &h, &masks.self_mask)?)?;
            let h = block.cross_norm.forward(&after_self)?;
            let (att, _) = block
                .cross_attn
                .weights_and_values(&h, &enc, &masks.cross)?;
            maps.push(att.i(0)?);
            ys = block.forward(&ys, &enc, &masks)?;
        }
        Ok(maps)
    }
}

/// A padded batch of (source, target) pairs. Sources end with EOS; the decoder reads the
/// target shifted right behind the start token (`PAD`) and must predict the target then EOS
/// (teacher forcing).
#[derive(Clone, Debug, PartialEq)]
pub struct Seq2SeqBatch {
    pub batch_size: usize,
    pub src_len: usize,
    pub tgt_len: usize,
    /// `batch_size · src_len`, padded with `PAD`.
    pub src: Vec<u32>,
    /// `[PAD] + target`, padded.
    pub tgt_in: Vec<u32>,
    /// `target + [EOS]`, padded; padding is not predicted.
    pub tgt_out: Vec<u32>,
    pub src_padding: Vec<Vec<bool>>,
    pub tgt_padding: Vec<Vec<bool>>,
}

impl Seq2SeqBatch {
    /// Pairs of model ids (characters already shifted by [`N_SPECIAL`], no specials).
    pub fn new(pairs: &[(Vec<u32>, Vec<u32>)]) -> Result<Self> {
        if pairs.is_empty() {
            return Err(Error::config(
                "batch_size",
                "a batch needs at least one pair",
            ));
        }
        let src_len = pairs.iter().map(|(s, _)| s.len() + 1).max().unwrap_or(1);
        let tgt_len = pairs.iter().map(|(_, t)| t.len() + 1).max().unwrap_or(1);
        let pad = |ids: Vec<u32>, len: usize| -> Vec<u32> {
            let mut ids = ids;
            ids.resize(len, PAD);
            ids
        };
        let mut batch = Self {
            batch_size: pairs.len(),
            src_len,
            tgt_len,
            src: Vec::new(),
            tgt_in: Vec::new(),
            tgt_out: Vec::new(),
            src_padding: Vec::new(),
            tgt_padding: Vec::new(),
        };
        for (s, t) in pairs {
            let src: Vec<u32> = s.iter().copied().chain([EOS]).collect();
            let tgt_in: Vec<u32> = [PAD].into_iter().chain(t.iter().copied()).collect();
            let tgt_out: Vec<u32> = t.iter().copied().chain([EOS]).collect();
            batch
                .src_padding
                .push((0..src_len).map(|j| j >= src.len()).collect());
            batch
                .tgt_padding
                .push((0..tgt_len).map(|j| j >= tgt_in.len()).collect());
            batch.src.extend(pad(src, src_len));
            batch.tgt_in.extend(pad(tgt_in, tgt_len));
            batch.tgt_out.extend(pad(tgt_out, tgt_len));
        }
        Ok(batch)
    }

    /// Source `(b, s)`, decoder input `(b, t)` and labels `(b, t)`.
    pub fn tensors(&self, device: &Device) -> Result<(Tensor, Tensor, Tensor)> {
        let b = self.batch_size;
        Ok((
            Tensor::from_vec(self.src.clone(), (b, self.src_len), device)?,
            Tensor::from_vec(self.tgt_in.clone(), (b, self.tgt_len), device)?,
            Tensor::from_vec(self.tgt_out.clone(), (b, self.tgt_len), device)?,
        ))
    }
}
