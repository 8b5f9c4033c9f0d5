//! Benchmark cases that run the same way natively (`examples/bench.rs`, candle on the CPU or
//! CUDA) and in the browser (the site's engine worker, wasm), so both measure the same model
//! doing the same work. `cargo xtask bench` reads the figures of both and of the PyTorch peer.
//!
//! The workload is `bench/config.json`: a model config, a training section and a sampling
//! section. Training runs on seeded random text over exactly `vocab_size` characters, the same
//! data the PyTorch peer draws, so no corpus has to be shipped to a benchmark.

use candle_core::Device;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use web_time::Instant;

use crate::Result;
use crate::data::Dataset;
use crate::model::gpt::{self, Gpt};
use crate::sample::{Generator, SamplingConfig, generate};
use crate::tokenizer::{CharTokenizer, Tokenizer};
use crate::train::{TrainConfig, Trainer};

/// Case names, shared with the peer's script and the summary in `xtask`.
pub const TRAIN: &str = "train";
pub const SAMPLE_KV_CACHE: &str = "sample_kv_cache";
pub const SAMPLE_NO_KV_CACHE: &str = "sample_no_kv_cache";

/// `bench/config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchConfig {
    pub model: gpt::Config,
    pub train: TrainSection,
    pub sample: SampleSection,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSection {
    pub seed: u64,
    pub batch_size: usize,
    /// Steps run before the clock starts (allocator and kernel warm-up).
    pub warmup_steps: usize,
    pub timed_steps: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub grad_clip: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleSection {
    pub seed: u64,
    pub prompt: Vec<u32>,
    pub max_new_tokens: usize,
    pub temperature: f32,
    pub warmup_runs: usize,
    pub timed_runs: usize,
}

/// One measured figure, e.g. `{"name": "train", "value": 1234.5, "unit": "tokens/s"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: String,
}

impl Figure {
    pub fn new(name: &str, value: f64, unit: &str) -> Self {
        Self {
            name: name.to_string(),
            value,
            unit: unit.to_string(),
        }
    }
}

/// Seeded random text over exactly `vocab_size` distinct characters.
pub fn random_corpus(vocab_size: usize, len: usize, seed: u64) -> String {
    let alphabet: Vec<char> = (0..vocab_size as u32)
        .map(|i| char::from_u32(0x21 + i).expect("printable ASCII and Latin-1 range"))
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut text: String = alphabet.iter().collect(); // every character at least once
    text.extend((0..len).map(|_| alphabet[rng.random_range(0..vocab_size)]));
    text
}

/// Training tokens/s of `config.model` (AdamW steps, clipping, no warm-up schedule), and the
/// trained model for the sampling cases. `progress(done, total)` is called after every step.
pub fn train(
    config: &BenchConfig,
    device: &Device,
    mut progress: impl FnMut(usize, usize),
) -> Result<(Figure, Gpt)> {
    let m = &config.model;
    let t = &config.train;
    let text = random_corpus(m.vocab_size, 200_000, t.seed);
    let tokenizer = Tokenizer::from(CharTokenizer::from_text(&text)?);
    let data = Dataset::new(&text, tokenizer, 0.1)?;
    let train = TrainConfig {
        seed: t.seed,
        batch_size: t.batch_size,
        max_steps: t.warmup_steps + t.timed_steps,
        learning_rate: t.learning_rate,
        weight_decay: t.weight_decay,
        beta1: t.beta1,
        beta2: t.beta2,
        grad_clip: t.grad_clip,
        warmup_steps: 0,
        ..TrainConfig::default()
    };
    let total = t.warmup_steps + t.timed_steps;
    let mut trainer = Trainer::new(m.clone(), train.clone(), data, device)?;
    for i in 0..t.warmup_steps {
        trainer.step()?;
        progress(i + 1, total);
    }
    let start = Instant::now();
    for i in 0..t.timed_steps {
        trainer.step()?;
        progress(t.warmup_steps + i + 1, total);
    }
    let tokens = t.timed_steps * train.tokens_per_step(m.block_size);
    let figure = Figure::new(
        TRAIN,
        tokens as f64 / start.elapsed().as_secs_f64(),
        "tokens/s",
    );
    Ok((figure, trainer.checkpoint().to_model(device)?))
}

/// New tokens/s from the config's prompt, with the KV cache (`use_kv_cache`) or recomputing
/// the whole context for every token.
pub fn sample(config: &BenchConfig, model: &Gpt, use_kv_cache: bool) -> Result<Figure> {
    let s = &config.sample;
    let sampling = SamplingConfig {
        temperature: s.temperature,
        seed: s.seed,
        ..SamplingConfig::default()
    };
    for _ in 0..s.warmup_runs {
        generate(model, &s.prompt, s.max_new_tokens, &sampling, use_kv_cache)?;
    }
    let start = Instant::now();
    for _ in 0..s.timed_runs {
        generate(model, &s.prompt, s.max_new_tokens, &sampling, use_kv_cache)?;
    }
    let name = if use_kv_cache {
        SAMPLE_KV_CACHE
    } else {
        SAMPLE_NO_KV_CACHE
    };
    let tokens = s.timed_runs * s.max_new_tokens;
    Ok(Figure::new(
        name,
        tokens as f64 / start.elapsed().as_secs_f64(),
        "tokens/s",
    ))
}

/// A GPT with seeded random weights (uniform in ±0.1): timing does not depend on what the
/// weights are, and a model with a long context need not be trained to be measured.
pub fn random_model(config: &gpt::Config, seed: u64, device: &Device) -> Result<Gpt> {
    random_checkpoint(config, seed)?.to_model(device)
}

/// The weights of [`random_model`] as a checkpoint (what the GPU path loads).
pub fn random_checkpoint(config: &gpt::Config, seed: u64) -> Result<crate::checkpoint::Checkpoint> {
    let device = &Device::Cpu;
    config.validate()?;
    let text = random_corpus(config.vocab_size, 0, seed);
    let tokenizer = Tokenizer::from(CharTokenizer::from_text(&text)?);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut shapes: Vec<_> = crate::checkpoint::expected_shapes(config)?
        .into_iter()
        .collect();
    shapes.sort(); // the same values for the same seed, whatever the map's order
    let tensors = shapes
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = (0..n).map(|_| rng.random_range(-0.1..0.1)).collect();
            Ok((name, candle_core::Tensor::from_vec(values, shape, device)?))
        })
        .collect::<Result<_>>()?;
    Ok(crate::checkpoint::Checkpoint::new(
        config.clone(),
        tokenizer,
        0,
        tensors,
    ))
}

/// One generated token of [`kv_profile`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct KvPoint {
    /// Tokens in the context when this one was produced (prompt included).
    pub position: usize,
    pub ms: f64,
    /// Bytes held by the KV cache after the step (0 without a cache).
    pub cache_bytes: usize,
}

/// Times each of `n_tokens` greedy tokens generated from a one-token prompt, with the KV
/// cache or recomputing the whole prefix each time. `n_tokens` must fit the model's context.
pub fn kv_profile(model: &Gpt, n_tokens: usize, use_kv_cache: bool) -> Result<Vec<KvPoint>> {
    if n_tokens + 1 > model.config().block_size {
        return Err(crate::Error::config(
            "n_tokens",
            format!(
                "{n_tokens} tokens do not fit a context of {}; use a model with a longer block_size",
                model.config().block_size
            ),
        ));
    }
    let mut g = Generator::new(model, &[0], SamplingConfig::greedy(), use_kv_cache)?;
    (0..n_tokens)
        .map(|_| {
            let start = Instant::now();
            g.next_token()?;
            Ok(KvPoint {
                position: g.tokens().len() - 1,
                ms: start.elapsed().as_secs_f64() * 1e3,
                cache_bytes: g.cache_bytes(),
            })
        })
        .collect()
}

/// Settings of the KV-cache and int8 cases (`bench/config.json`'s optional `inference`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct InferenceSection {
    /// Generation lengths measured with and without the cache.
    pub kv_positions: Vec<usize>,
    /// `(m, k, n)` of the matmul `x (m, k) · Wᵀ`, `W (n, k)`.
    pub matmul: (usize, usize, usize),
    pub matmul_runs: usize,
}

impl Default for InferenceSection {
    fn default() -> Self {
        Self {
            kv_positions: vec![64, 256, 1024],
            matmul: (64, 512, 512),
            matmul_runs: 10,
        }
    }
}

/// Tokens generated per step at a context of about `n` tokens.
const KV_TIMED_TOKENS: usize = 16;

/// New tokens/s when the context already holds about `n` tokens, with and without the
/// cache, for each `n` of `positions` (`kv_cache_{n}` and `no_kv_cache_{n}`): a prompt of
/// `n - 16` tokens is taken in (untimed), then the next 16 tokens are timed. Measuring at a
/// position rather than over a whole generation keeps the uncached case linear in `n`
/// instead of quadratic (minutes at 1024). Seeded random weights on `model`'s shape with a
/// context of the largest `n`: timing does not need trained weights.
pub fn kv_cache(model: &gpt::Config, positions: &[usize], device: &Device) -> Result<Vec<Figure>> {
    let longest = positions.iter().copied().max().unwrap_or(1);
    let cfg = gpt::Config {
        block_size: longest + 1,
        ..model.clone()
    };
    let m = random_model(&cfg, 1337, device)?;
    let mut figures = Vec::new();
    for &n in positions {
        let timed = KV_TIMED_TOKENS.min(n / 2).max(1);
        let prompt = vec![0u32; n - timed];
        for use_cache in [true, false] {
            let mut g = Generator::new(&m, &prompt, SamplingConfig::greedy(), use_cache)?;
            g.next_token()?; // takes the prompt in
            let start = Instant::now();
            for _ in 1..timed {
                g.next_token()?;
            }
            let secs = start.elapsed().as_secs_f64();
            let name = if use_cache { "kv_cache" } else { "no_kv_cache" };
            figures.push(Figure::new(
                &format!("{name}_{n}"),
                (timed - 1) as f64 / secs.max(1e-9),
                "tokens/s (random weights)",
            ));
        }
    }
    Ok(figures)
}

/// GFLOP/s of `y = x Wᵀ` in f32 (candle's matmul) and with int8 weights and activations
/// (`quant::matmul_i8`, a plain loop with i32 accumulators), same shapes, seeded data.
pub fn int8_matmul(section: &InferenceSection, device: &Device) -> Result<Vec<Figure>> {
    use crate::quant::{QTensor, Scheme, matmul_i8};
    let (m, k, n) = section.matmul;
    let runs = section.matmul_runs.max(1);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
    let w: Vec<f32> = (0..n * k).map(|_| rng.random_range(-0.1..0.1)).collect();
    let xt = candle_core::Tensor::from_vec(x.clone(), (m, k), device)?;
    let wt = candle_core::Tensor::from_vec(w, (n, k), device)?;
    let wt_t = wt.t()?.contiguous()?;
    let flops = (2 * m * k * n * runs) as f64;
    xt.matmul(&wt_t)?; // warm-up
    let start = Instant::now();
    for _ in 0..runs {
        xt.matmul(&wt_t)?.to_device(&Device::Cpu)?;
    }
    let f32_rate = flops / start.elapsed().as_secs_f64() / 1e9;
    let q = QTensor::quantize(&wt, Scheme::Int8Symmetric)?;
    matmul_i8(&x, m, k, &q)?;
    let start = Instant::now();
    for _ in 0..runs {
        matmul_i8(&x, m, k, &q)?;
    }
    let i8_rate = flops / start.elapsed().as_secs_f64() / 1e9;
    Ok(vec![
        Figure::new(&format!("matmul_f32_{m}x{k}x{n}"), f32_rate, "GFLOP/s"),
        Figure::new(&format!("matmul_int8_{m}x{k}x{n}"), i8_rate, "GFLOP/s"),
    ])
}

/// Square sizes of the matmul cases, GPU and CPU (`gpu_matmul_{n}`, `cpu_matmul_{n}`).
pub const MATMUL_SIZES: [usize; 6] = [64, 128, 256, 512, 1024, 2048];
/// Generation cases on the same seeded random weights: `gpu_generate`, `cpu_generate`.
pub const GPU_GENERATE: &str = "gpu_generate";
pub const CPU_GENERATE: &str = "cpu_generate";
/// Each timed case repeats until about this long (at least once, at most 50 times).
const TIMED_SECS: f64 = 0.5;

fn square(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n * n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// How many runs fill [`TIMED_SECS`] when one takes `one_run` seconds.
fn runs_for(one_run: f64) -> usize {
    ((TIMED_SECS / one_run.max(1e-6)) as usize).clamp(1, 50)
}

/// GFLOP/s (2n³ per product) of candle's f32 matmul at each square size `n`: the CPU column
/// next to [`gpu_matmul`].
pub fn cpu_matmul(sizes: &[usize], device: &Device) -> Result<Vec<Figure>> {
    sizes
        .iter()
        .map(|&n| {
            let a = candle_core::Tensor::from_vec(square(n, 1), (n, n), device)?;
            let b = candle_core::Tensor::from_vec(square(n, 2), (n, n), device)?;
            let start = Instant::now();
            a.matmul(&b)?.to_device(&Device::Cpu)?; // warm-up, and the time of one run
            let runs = runs_for(start.elapsed().as_secs_f64());
            let start = Instant::now();
            for _ in 0..runs {
                a.matmul(&b)?.to_device(&Device::Cpu)?;
            }
            let flops = 2.0 * (n as f64).powi(3) * runs as f64;
            Ok(Figure::new(
                &format!("cpu_matmul_{n}"),
                flops / start.elapsed().as_secs_f64() / 1e9,
                "GFLOP/s",
            ))
        })
        .collect()
}

/// GFLOP/s of the engine's tiled WGSL matmul (`gpu::Gpu::matmul`) at each square size:
/// the products are queued and the clock stops when the device has finished them.
#[cfg(feature = "webgpu")]
pub async fn gpu_matmul(gpu: &crate::gpu::Gpu, sizes: &[usize]) -> Result<Vec<Figure>> {
    let mut figures = Vec::new();
    for &n in sizes {
        let a = gpu.upload(&square(n, 1), &[n, n])?;
        let b = gpu.upload(&square(n, 2), &[n, n])?;
        gpu.sync().await?; // uploads done, pipeline compiled on the first size
        let start = Instant::now();
        gpu.matmul(&a, &b)?;
        gpu.sync().await?;
        let runs = runs_for(start.elapsed().as_secs_f64());
        let start = Instant::now();
        for _ in 0..runs {
            gpu.matmul(&a, &b)?;
        }
        gpu.sync().await?;
        let flops = 2.0 * (n as f64).powi(3) * runs as f64;
        figures.push(Figure::new(
            &format!("gpu_matmul_{n}"),
            flops / start.elapsed().as_secs_f64() / 1e9,
            "GFLOP/s",
        ));
    }
    Ok(figures)
}

/// The sampling section's settings with the KV cache: tokens/s of generation.
fn generate_config(config: &BenchConfig) -> SamplingConfig {
    SamplingConfig {
        temperature: config.sample.temperature,
        seed: config.sample.seed,
        ..SamplingConfig::default()
    }
}

/// New tokens/s on the CPU (KV cache) of the bench model with the seeded random weights
/// that [`gpu_generate`] uses: the CPU column next to it.
pub fn cpu_generate(config: &BenchConfig, device: &Device) -> Result<Figure> {
    let s = &config.sample;
    let model = random_model(&config.model, 1337, device)?;
    let sampling = generate_config(config);
    generate(&model, &s.prompt, s.max_new_tokens, &sampling, true)?; // warm-up
    let start = Instant::now();
    for _ in 0..s.timed_runs.max(1) {
        generate(&model, &s.prompt, s.max_new_tokens, &sampling, true)?;
    }
    let tokens = s.timed_runs.max(1) * s.max_new_tokens;
    Ok(Figure::new(
        CPU_GENERATE,
        tokens as f64 / start.elapsed().as_secs_f64(),
        "tokens/s",
    ))
}

/// New tokens/s on the GPU (`gpu::GpuGpt`, KV cache on the device, one read-back of the
/// logits per token) of the bench model with seeded random weights.
#[cfg(feature = "webgpu")]
pub async fn gpu_generate(config: &BenchConfig, gpu: &crate::gpu::Gpu) -> Result<Figure> {
    let s = &config.sample;
    let model = crate::gpu::GpuGpt::from_checkpoint(gpu, &random_checkpoint(&config.model, 1337)?)?;
    let sampling = generate_config(config);
    crate::gpu::generate(&model, &s.prompt, s.max_new_tokens, &sampling).await?; // warm-up
    let start = Instant::now();
    for _ in 0..s.timed_runs.max(1) {
        crate::gpu::generate(&model, &s.prompt, s.max_new_tokens, &sampling).await?;
    }
    let tokens = s.timed_runs.max(1) * s.max_new_tokens;
    Ok(Figure::new(
        GPU_GENERATE,
        tokens as f64 / start.elapsed().as_secs_f64(),
        "tokens/s",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> BenchConfig {
        serde_json::from_value(serde_json::json!({
            "model": {"vocab_size": 12, "block_size": 8, "n_layer": 1, "n_head": 2, "n_embd": 8,
                      "dropout": 0.0, "bias": true},
            "train": {"seed": 1, "batch_size": 2, "warmup_steps": 1, "timed_steps": 2,
                      "learning_rate": 0.001, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.99,
                      "grad_clip": 1.0},
            "sample": {"seed": 1, "prompt": [0], "max_new_tokens": 5, "temperature": 1.0,
                       "warmup_runs": 0, "timed_runs": 1}
        }))
        .unwrap()
    }

    #[test]
    fn random_corpus_uses_exactly_the_vocabulary() {
        let text = random_corpus(12, 500, 3);
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort();
        chars.dedup();
        assert_eq!(chars.len(), 12);
        assert_eq!(text, random_corpus(12, 500, 3), "seeded");
    }

    #[test]
    fn cases_measure_positive_rates_and_report_progress() {
        let config = tiny();
        let mut calls = Vec::new();
        let (figure, model) = train(&config, &Device::Cpu, |d, t| calls.push((d, t))).unwrap();
        assert_eq!(figure.name, TRAIN);
        assert!(figure.value.is_finite() && figure.value > 0.0);
        assert_eq!(calls, vec![(1, 3), (2, 3), (3, 3)]);
        for use_cache in [true, false] {
            let f = sample(&config, &model, use_cache).unwrap();
            assert!(f.value.is_finite() && f.value > 0.0, "{f:?}");
        }
    }

    #[test]
    fn kv_profile_and_inference_cases() {
        let cfg = tiny().model;
        let m = random_model(&cfg, 1, &Device::Cpu).unwrap();
        let cached = kv_profile(&m, 5, true).unwrap();
        // 1 layer × 2 (k, v) × 8 wide × positions × 4 bytes: the cache holds every fed token.
        let bytes: Vec<usize> = cached.iter().map(|p| p.cache_bytes).collect();
        assert_eq!(bytes, vec![64, 128, 192, 256, 320]);
        assert!(
            kv_profile(&m, 5, false)
                .unwrap()
                .iter()
                .all(|p| p.cache_bytes == 0)
        );
        assert!(
            kv_profile(&m, 8, true)
                .unwrap_err()
                .to_string()
                .contains("block_size")
        );
        let figures = kv_cache(&cfg, &[4, 6], &Device::Cpu).unwrap();
        let names: Vec<&str> = figures.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["kv_cache_4", "no_kv_cache_4", "kv_cache_6", "no_kv_cache_6"]
        );
        let section = InferenceSection {
            matmul: (2, 32, 4),
            matmul_runs: 2,
            ..InferenceSection::default()
        };
        let mm = int8_matmul(&section, &Device::Cpu).unwrap();
        assert!(
            mm.iter().all(|f| f.value.is_finite() && f.value > 0.0),
            "{mm:?}"
        );
    }
    #[test]
    fn cpu_matmul_and_generation_cases() {
        let mm = cpu_matmul(&[3, 17], &Device::Cpu).unwrap();
        let names: Vec<&str> = mm.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["cpu_matmul_3", "cpu_matmul_17"]);
        assert!(mm.iter().all(|f| f.value.is_finite() && f.value > 0.0));
        let f = cpu_generate(&tiny(), &Device::Cpu).unwrap();
        assert_eq!(f.name, CPU_GENERATE);
        assert!(f.value.is_finite() && f.value > 0.0, "{f:?}");
        let ckpt = random_checkpoint(&tiny().model, 1).unwrap();
        assert_eq!(ckpt.meta.model, tiny().model);
    }
}
