//! Turning next-token logits into text: greedy decoding, temperature, top-k and top-p
//! (nucleus) sampling (Holtzman et al., "The Curious Case of Neural Text Degeneration", 2020),
//! the repetition penalty of CTRL (Keskar et al., 2019), seeded, with or without a KV cache.

use candle_core::{IndexOp, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::model::gpt::{Gpt, KvCache};
use crate::{Error, Result};

/// How to pick each next token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingConfig {
    /// Divides the logits; 0 means greedy (always the most likely token).
    pub temperature: f32,
    /// Keep only the k most likely tokens.
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probabilities sum to at least p.
    pub top_p: Option<f32>,
    pub seed: u64,
    /// CTRL's repetition penalty θ: the logit of every token already in the text is divided
    /// by θ when positive and multiplied by θ when negative. 1 turns it off; CTRL used 1.2.
    pub repetition_penalty: f32,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: None,
            top_p: None,
            seed: 1337,
            repetition_penalty: 1.0,
        }
    }
}

impl SamplingConfig {
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<()> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(Error::config("temperature", "must be a finite number ≥ 0"));
        }
        if self.top_k == Some(0) {
            return Err(Error::config("top_k", "must be at least 1"));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(Error::config("top_p", format!("{p} is not in (0, 1]")));
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return Err(Error::config(
                "repetition_penalty",
                "must be a finite number > 0 (1 turns it off)",
            ));
        }
        Ok(())
    }
}

/// Applies CTRL's repetition penalty in place: each distinct token of `history` has its logit
/// divided by `penalty` if positive, multiplied by it if not, so a penalty above 1 always makes
/// a seen token less likely (dividing a negative logit would raise it). As Hugging Face's
/// `RepetitionPenaltyLogitsProcessor`, a token counts once however often it occurred.
pub fn penalize_repeats(logits: &mut [f32], history: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen = vec![false; logits.len()];
    for &id in history {
        let i = id as usize;
        if i < logits.len() && !seen[i] {
            seen[i] = true;
            let z = logits[i];
            logits[i] = if z > 0.0 { z / penalty } else { z * penalty };
        }
    }
}

/// The distribution the next token is drawn from: softmax(logits / T), restricted to the
/// top-k and then to the top-p nucleus, renormalised. Greedy puts all mass on the argmax.
pub fn distribution(logits: &[f32], cfg: &SamplingConfig) -> Vec<f32> {
    let mut probs = vec![0f32; logits.len()];
    if logits.is_empty() {
        return probs;
    }
    if cfg.temperature == 0.0 {
        probs[argmax(logits)] = 1.0;
        return probs;
    }
    // Indices by descending logit; ties keep the lower id first, so results are stable.
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    let keep = cfg.top_k.unwrap_or(logits.len()).min(logits.len()).max(1);
    let order = &order[..keep];
    // Softmax over the kept tokens, shifted by the max for numerical stability.
    let max = logits[order[0]];
    let weights: Vec<f32> = order
        .iter()
        .map(|&i| ((logits[i] - max) / cfg.temperature).exp())
        .collect();
    let total: f32 = weights.iter().sum();
    let mut kept = order.len();
    if let Some(p) = cfg.top_p {
        let mut cumulative = 0.0;
        for (n, w) in weights.iter().enumerate() {
            cumulative += w / total;
            if cumulative >= p {
                kept = n + 1;
                break;
            }
        }
    }
    let nucleus: f32 = weights[..kept].iter().sum();
    for (&i, w) in order[..kept].iter().zip(&weights) {
        probs[i] = w / nucleus;
    }
    probs
}

fn argmax(xs: &[f32]) -> usize {
    xs.iter()
        .enumerate()
        .fold(0, |best, (i, x)| if *x > xs[best] { i } else { best })
}

/// Draws an index from `probs` (which sum to 1). The GPU generator (`gpu::GpuGenerator`)
/// draws with it too, so both paths pick the same token from the same logits and seed.
pub fn draw(probs: &[f32], rng: &mut ChaCha8Rng) -> u32 {
    let r: f32 = rng.random();
    let mut cumulative = 0.0;
    let mut last_nonzero = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            cumulative += p;
            last_nonzero = i;
            if r < cumulative {
                return i as u32;
            }
        }
    }
    last_nonzero as u32 // rounding left r above the total
}

/// Produces tokens one at a time, so a UI can show each as it comes.
pub struct Generator<'a> {
    model: &'a Gpt,
    config: SamplingConfig,
    tokens: Vec<u32>,
    cache: Option<KvCache>,
    rng: ChaCha8Rng,
    last_logits: Vec<f32>,
    last_distribution: Vec<f32>,
}

/// A prompt a generator can start from: at least one token, each inside the vocabulary.
/// Shared by the CPU [`Generator`] and the GPU's generator.
pub fn check_prompt(prompt: &[u32], vocab_size: usize) -> Result<()> {
    if prompt.is_empty() {
        return Err(Error::config("prompt", "must hold at least one token"));
    }
    let vocab = vocab_size as u32;
    if let Some(bad) = prompt.iter().find(|&&id| id >= vocab) {
        return Err(Error::config(
            "prompt",
            format!("token id {bad} is outside the vocabulary of {vocab}"),
        ));
    }
    Ok(())
}

impl<'a> Generator<'a> {
    pub fn new(
        model: &'a Gpt,
        prompt: &[u32],
        config: SamplingConfig,
        use_kv_cache: bool,
    ) -> Result<Self> {
        config.validate()?;
        check_prompt(prompt, model.config().vocab_size)?;
        Ok(Self {
            model,
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
            tokens: prompt.to_vec(),
            cache: use_kv_cache.then(|| model.new_cache()),
            last_logits: Vec::new(),
            last_distribution: Vec::new(),
        })
    }

    /// Prompt and generated tokens so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// The logits of the last step after the repetition penalty, before temperature and the
    /// top-k/top-p cuts: a UI draws the whole distribution and where the cuts fall from them.
    pub fn last_logits(&self) -> &[f32] {
        &self.last_logits
    }

    /// The distribution the last token was drawn from.
    pub fn last_distribution(&self) -> &[f32] {
        &self.last_distribution
    }

    pub fn cache_bytes(&self) -> usize {
        self.cache.as_ref().map_or(0, KvCache::bytes)
    }

    /// Logits for the position after the last token.
    fn next_logits(&mut self) -> Result<Vec<f32>> {
        let block_size = self.model.config().block_size;
        let device = self.model.device();
        // Crop to the context the model was trained on, as nanoGPT's `generate` does.
        let context = &self.tokens[self.tokens.len().saturating_sub(block_size)..];
        let logits = match &mut self.cache {
            None => {
                let idx = Tensor::new(context, device)?.unsqueeze(0)?;
                self.model.next_logits(&idx, None)?
            }
            Some(cache) => {
                if self.tokens.len() > block_size {
                    // Past the context the window slides, so every position embedding of the
                    // cached keys changes: the cache must be rebuilt from the cropped window.
                    cache.clear();
                }
                let fresh = &context[cache.len()..];
                let idx = Tensor::new(fresh, device)?.unsqueeze(0)?;
                self.model.next_logits(&idx, Some(cache))?
            }
        };
        Ok(logits.i(0)?.to_vec1::<f32>()?)
    }

    pub fn next_token(&mut self) -> Result<u32> {
        let mut logits = self.next_logits()?;
        penalize_repeats(&mut logits, &self.tokens, self.config.repetition_penalty);
        self.last_distribution = distribution(&logits, &self.config);
        self.last_logits = logits;
        let token = draw(&self.last_distribution, &mut self.rng);
        self.tokens.push(token);
        Ok(token)
    }
}

/// `max_new_tokens` tokens that follow `prompt`.
pub fn generate(
    model: &Gpt,
    prompt: &[u32],
    max_new_tokens: usize,
    config: &SamplingConfig,
    use_kv_cache: bool,
) -> Result<Vec<u32>> {
    let mut generator = Generator::new(model, prompt, config.clone(), use_kv_cache)?;
    (0..max_new_tokens)
        .map(|_| generator.next_token())
        .collect()
}
