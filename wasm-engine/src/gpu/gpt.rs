//! The GPT of `model::gpt` on the GPU: the same checkpoint, the same forward pass (GPT-2:
//! learned positions, pre-LayerNorm blocks, exact GELU, residuals, head tied to `wte`), run
//! by the kernels of `gpu`, with the keys and values of past positions cached on the device.
//! Generation reads back only the last position's logits per token and picks the token with
//! `sample`'s code, so greedy and seeded sampling follow the CPU path's choices.

use std::collections::HashMap;

use candle_core::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{Gpu, GpuTensor, KvLayer, MatmulSpec};
use crate::checkpoint::Checkpoint;
use crate::model::gpt::{Config, Ffn, Norm, NormPlacement, PositionEncoding};
use crate::sample::{SamplingConfig, distribution, draw, penalize_repeats};
use crate::{Error, Result};

/// LayerNorm's epsilon, as the CPU model.
const EPS: f32 = 1e-5;

struct Linear {
    /// (out, in), as stored in the checkpoint.
    weight: GpuTensor,
    bias: Option<GpuTensor>,
}

struct LayerNorm {
    weight: GpuTensor,
    bias: Option<GpuTensor>,
}

struct Block {
    ln_1: LayerNorm,
    c_attn: Linear,
    attn_proj: Linear,
    ln_2: LayerNorm,
    c_fc: Linear,
    mlp_proj: Linear,
}

/// A GPT-2 whose weights live on the GPU.
pub struct GpuGpt {
    gpu: Gpu,
    config: Config,
    wte: GpuTensor,
    wpe: GpuTensor,
    h: Vec<Block>,
    ln_f: LayerNorm,
}

/// Keys and values of every layer, on the GPU.
pub struct GpuKvCache {
    layers: Vec<KvLayer>,
}

impl GpuKvCache {
    /// Positions cached.
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, KvLayer::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(KvLayer::clear);
    }

    /// Bytes of keys and values cached: layers × 2 × n_embd × positions × 4, as `KvCache`.
    pub fn bytes(&self) -> usize {
        self.layers.iter().map(KvLayer::bytes).sum()
    }
}

/// The GPU path runs the GPT-2 architecture only; the error names the first field that
/// differs from it.
pub fn check_supported(cfg: &Config) -> Result<()> {
    cfg.validate()?;
    let unsupported = |field: &str, value: String, gpt2: &str| {
        Err(Error::config(
            field,
            format!(
                "the GPU path runs GPT-2 ({field} = {gpt2}), not {field} = {value}; use the CPU path"
            ),
        ))
    };
    if cfg.position != PositionEncoding::Learned {
        return unsupported("position", format!("{:?}", cfg.position), "Learned");
    }
    if cfg.norm != Norm::LayerNorm {
        return unsupported("norm", format!("{:?}", cfg.norm), "LayerNorm");
    }
    if cfg.ffn != Ffn::Gelu {
        return unsupported("ffn", format!("{:?}", cfg.ffn), "Gelu");
    }
    if cfg.norm_placement != NormPlacement::Pre {
        return unsupported("norm_placement", format!("{:?}", cfg.norm_placement), "Pre");
    }
    if !cfg.residual {
        return unsupported("residual", "false".into(), "true");
    }
    Ok(())
}

impl GpuGpt {
    /// The checkpoint's weights (what `Checkpoint::to_model` loads for the CPU), on the GPU.
    pub fn from_checkpoint(gpu: &Gpu, checkpoint: &Checkpoint) -> Result<Self> {
        Self::from_tensors(gpu, &checkpoint.meta.model, &checkpoint.tensors)
    }

    /// Weights by their checkpoint names (`wte.weight`, `h.0.attn.c_attn.weight`, …).
    pub fn from_tensors(
        gpu: &Gpu,
        cfg: &Config,
        tensors: &HashMap<String, Tensor>,
    ) -> Result<Self> {
        check_supported(cfg)?;
        if cfg.block_size > super::MAX_CONTEXT {
            return Err(Error::config(
                "block_size",
                format!(
                    "the GPU attention kernel holds at most {} positions, not {}",
                    super::MAX_CONTEXT,
                    cfg.block_size
                ),
            ));
        }
        let shapes = crate::checkpoint::expected_shapes(cfg)?;
        let get = |name: &str| -> Result<GpuTensor> {
            let t = tensors
                .get(name)
                .ok_or_else(|| Error::Checkpoint(format!("missing tensor {name}")))?;
            if let Some(shape) = shapes.get(name)
                && t.dims() != shape.as_slice()
            {
                return Err(Error::Checkpoint(format!(
                    "{name} has shape {:?}, the config needs {shape:?}",
                    t.dims()
                )));
            }
            gpu.upload_tensor(t)
        };
        let opt = |name: String, present: bool| -> Result<Option<GpuTensor>> {
            if present {
                get(&name).map(Some)
            } else {
                Ok(None)
            }
        };
        let linear = |prefix: String| -> Result<Linear> {
            Ok(Linear {
                weight: get(&format!("{prefix}.weight"))?,
                bias: opt(format!("{prefix}.bias"), cfg.bias)?,
            })
        };
        let norm = |prefix: String| -> Result<LayerNorm> {
            Ok(LayerNorm {
                weight: get(&format!("{prefix}.weight"))?,
                bias: opt(format!("{prefix}.bias"), cfg.norm_bias())?,
            })
        };
        let h = (0..cfg.n_layer)
            .map(|i| {
                Ok(Block {
                    ln_1: norm(format!("h.{i}.ln_1"))?,
                    c_attn: linear(format!("h.{i}.attn.c_attn"))?,
                    attn_proj: linear(format!("h.{i}.attn.c_proj"))?,
                    ln_2: norm(format!("h.{i}.ln_2"))?,
                    c_fc: linear(format!("h.{i}.mlp.c_fc"))?,
                    mlp_proj: linear(format!("h.{i}.mlp.c_proj"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let model = Self {
            gpu: gpu.clone(),
            config: cfg.clone(),
            wte: get("wte.weight")?,
            wpe: get("wpe.weight")?,
            h,
            ln_f: norm("ln_f".into())?,
        };
        gpu.flush()?;
        Ok(model)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Bytes of weights on the device.
    pub fn weight_bytes(&self) -> usize {
        let lin = |l: &Linear| l.weight.bytes() + l.bias.as_ref().map_or(0, GpuTensor::bytes);
        let ln = |l: &LayerNorm| l.weight.bytes() + l.bias.as_ref().map_or(0, GpuTensor::bytes);
        self.wte.bytes()
            + self.wpe.bytes()
            + ln(&self.ln_f)
            + self
                .h
                .iter()
                .map(|b| {
                    ln(&b.ln_1)
                        + lin(&b.c_attn)
                        + lin(&b.attn_proj)
                        + ln(&b.ln_2)
                        + lin(&b.c_fc)
                        + lin(&b.mlp_proj)
                })
                .sum::<usize>()
    }

    /// An empty cache with room for the whole context.
    pub fn new_cache(&self) -> Result<GpuKvCache> {
        let c = &self.config;
        let layers = (0..c.n_layer)
            .map(|_| self.gpu.kv_layer(c.n_head, c.head_dim(), c.block_size))
            .collect::<Result<Vec<_>>>()?;
        Ok(GpuKvCache { layers })
    }

    fn linear(&self, x: &GpuTensor, l: &Linear) -> Result<GpuTensor> {
        let mut y = self.gpu.matmul_bt(x, &l.weight)?;
        if let Some(b) = &l.bias {
            self.gpu.bias_add(&mut y, b)?;
        }
        Ok(y)
    }

    fn norm(&self, x: &GpuTensor, l: &LayerNorm) -> Result<GpuTensor> {
        self.gpu.layer_norm(x, &l.weight, l.bias.as_ref(), EPS)
    }

    /// The residual stream after the last block, (t, c), for tokens `ids` that follow the
    /// positions already in `cache`; their keys and values are appended to it.
    fn hidden(&self, ids: &[u32], cache: &mut GpuKvCache) -> Result<GpuTensor> {
        if ids.is_empty() {
            return Err(Error::config("ids", "must hold at least one token"));
        }
        let offset = cache.len();
        if offset + ids.len() > self.config.block_size {
            return Err(Error::config(
                "block_size",
                format!(
                    "sequence of {} tokens is longer than the model's context of {}",
                    offset + ids.len(),
                    self.config.block_size
                ),
            ));
        }
        let gpu = &self.gpu;
        // x = wte[ids] + wpe[offset..offset + t]
        let mut x = gpu.embedding(&self.wte, ids, Some((&self.wpe, offset)))?;
        for (block, layer) in self.h.iter().zip(&mut cache.layers) {
            // x = x + c_proj(attention(c_attn(ln_1(x))))
            let qkv = self.linear(&self.norm(&x, &block.ln_1)?, &block.c_attn)?;
            let att = gpu.attention(&qkv, layer)?;
            gpu.add(&mut x, &self.linear(&att, &block.attn_proj)?)?;
            // x = x + c_proj(gelu(c_fc(ln_2(x))))
            let mut hidden = self.linear(&self.norm(&x, &block.ln_2)?, &block.c_fc)?;
            gpu.gelu(&mut hidden)?;
            gpu.add(&mut x, &self.linear(&hidden, &block.mlp_proj)?)?;
        }
        Ok(x)
    }

    /// `ln_f(x[rows]) · wteᵀ` for the last `rows` rows of `x`: logits (rows, vocab).
    fn head(&self, x: &GpuTensor, rows: usize) -> Result<GpuTensor> {
        let xs = self.norm(x, &self.ln_f)?;
        let (t, c) = (x.shape()[0], self.config.n_embd);
        let v = self.config.vocab_size;
        let logits = self.gpu.zeros(&[rows, v])?;
        self.gpu.matmul_into(
            &xs,
            &self.wte,
            &logits,
            &MatmulSpec {
                m: rows,
                n: v,
                k: c,
                trans_a: false,
                trans_b: true,
                a_off: (t - rows) * c,
                batch: 1,
                a_batch: 0,
                b_batch: 0,
            },
        )?;
        Ok(logits)
    }

    /// Logits (t, vocab) of every new token of `ids`, which follow the positions in `cache`.
    /// Recorded, not yet computed: [`Gpu::read`] the result.
    pub fn forward(&self, ids: &[u32], cache: &mut GpuKvCache) -> Result<GpuTensor> {
        let x = self.hidden(ids, cache)?;
        self.head(&x, ids.len())
    }

    /// Logits (1, vocab) of the token after the last of `ids` (the head runs on the last
    /// position only).
    pub fn next_logits(&self, ids: &[u32], cache: &mut GpuKvCache) -> Result<GpuTensor> {
        let x = self.hidden(ids, cache)?;
        self.head(&x, 1)
    }

    /// Logits of every position of `ids` from an empty cache, read back: (t, vocab) as a
    /// candle tensor, to compare with `Gpt::forward`.
    pub async fn logits(&self, ids: &[u32]) -> Result<Tensor> {
        let mut cache = self.new_cache()?;
        let logits = self.forward(ids, &mut cache)?;
        self.gpu.read_tensor(&logits).await
    }
}

/// Produces tokens one at a time on the GPU, as `sample::Generator` does on the CPU with a
/// KV cache: same prompt checks, same cropping to the context, same choice of token.
pub struct GpuGenerator<'a> {
    model: &'a GpuGpt,
    config: SamplingConfig,
    tokens: Vec<u32>,
    cache: GpuKvCache,
    rng: ChaCha8Rng,
    last_logits: Vec<f32>,
    last_distribution: Vec<f32>,
}

impl<'a> GpuGenerator<'a> {
    pub fn new(model: &'a GpuGpt, prompt: &[u32], config: SamplingConfig) -> Result<Self> {
        config.validate()?;
        crate::sample::check_prompt(prompt, model.config().vocab_size)?;
        Ok(Self {
            model,
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
            tokens: prompt.to_vec(),
            cache: model.new_cache()?,
            last_logits: Vec::new(),
            last_distribution: Vec::new(),
        })
    }

    /// Prompt and generated tokens so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// The last step's logits after the repetition penalty (as `Generator::last_logits`).
    pub fn last_logits(&self) -> &[f32] {
        &self.last_logits
    }

    /// The distribution the last token was drawn from.
    pub fn last_distribution(&self) -> &[f32] {
        &self.last_distribution
    }

    pub fn cache_bytes(&self) -> usize {
        self.cache.bytes()
    }

    /// Runs the new tokens through the model on the GPU, reads back the last position's
    /// logits (the only transfer per token) and draws the next token.
    pub async fn next_token(&mut self) -> Result<u32> {
        let block_size = self.model.config().block_size;
        let context = &self.tokens[self.tokens.len().saturating_sub(block_size)..];
        if self.tokens.len() > block_size {
            // The window slides: every cached position moves, so rebuild the cache.
            self.cache.clear();
        }
        let fresh = &context[self.cache.len()..];
        let logits = self.model.next_logits(fresh, &mut self.cache)?;
        let mut logits = self.model.gpu.read(&logits).await?;
        penalize_repeats(&mut logits, &self.tokens, self.config.repetition_penalty);
        self.last_distribution = distribution(&logits, &self.config);
        self.last_logits = logits;
        let token = draw(&self.last_distribution, &mut self.rng);
        self.tokens.push(token);
        Ok(token)
    }
}

/// `max_new_tokens` tokens that follow `prompt`, generated on the GPU.
pub async fn generate(
    model: &GpuGpt,
    prompt: &[u32],
    max_new_tokens: usize,
    config: &SamplingConfig,
) -> Result<Vec<u32>> {
    let mut generator = GpuGenerator::new(model, prompt, config.clone())?;
    let mut out = Vec::with_capacity(max_new_tokens);
    for _ in 0..max_new_tokens {
        out.push(generator.next_token().await?);
    }
    Ok(out)
}
