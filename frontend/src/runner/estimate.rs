//! What a job will cost, worked out before it is submitted: parameters from the model config,
//! training FLOPs ≈ 6·N·D, and time from a throughput in FLOP/s (measured on the runner by an
//! earlier job when there is one). Lesson D3 derives these formulas.

use engine::model::gpt;
use engine::protocol::{Job, JobId, Task};
use engine::train::{StepMetrics, TrainConfig};

/// Training FLOPs per parameter per token: 2 in the forward pass (a multiply and an add per
/// weight), 4 in the backward pass (gradients of the inputs and of the weights).
pub const FLOPS_PER_PARAM_TOKEN: f64 = 6.0;

/// Bytes per parameter while training in f32 with AdamW: weights, gradients, and the two
/// moment estimates, 4 bytes each. Activations come on top.
pub const TRAIN_BYTES_PER_PARAM: f64 = 16.0;

/// Sustained FLOP/s assumed for a runner that has not trained anything yet. Small models are
/// far from a device's peak: the runner's CPU build reaches about 2 GFLOP/s on the 1-layer
/// model of its overhead bench; a GPU on a model this small is bound by kernel launches, not
/// arithmetic, so its figure is kept modest too.
pub fn assumed_flops_per_sec(device: &str) -> f64 {
    if device.starts_with("cuda") {
        2e11
    } else {
        2e9
    }
}

/// Where a throughput figure came from.
#[derive(Clone, Debug, PartialEq)]
pub enum Throughput {
    /// From job `job`'s steps: median tokens/s × 6 × its parameters.
    Measured {
        job: JobId,
        flops_per_sec: f64,
        tokens_per_sec: f64,
        n_params: usize,
    },
    Assumed {
        flops_per_sec: f64,
        device: String,
    },
}

impl Throughput {
    pub fn flops_per_sec(&self) -> f64 {
        match self {
            Throughput::Measured { flops_per_sec, .. }
            | Throughput::Assumed { flops_per_sec, .. } => *flops_per_sec,
        }
    }

    /// The achieved FLOP/s of a job from its step metrics: the median tokens/s (the first
    /// steps, slower while caches warm up, are skipped) times 6·N.
    pub fn measured(job: &Job, metrics: &[StepMetrics]) -> Option<Self> {
        let n_params = job.n_params?;
        let skip = (metrics.len() / 10).min(10);
        let mut tps: Vec<f64> = metrics[skip..]
            .iter()
            .map(|m| m.tokens_per_sec)
            .filter(|t| t.is_finite() && *t > 0.0)
            .collect();
        if tps.is_empty() {
            return None;
        }
        tps.sort_by(f64::total_cmp);
        let tokens_per_sec = tps[tps.len() / 2];
        Some(Throughput::Measured {
            job: job.id,
            flops_per_sec: tokens_per_sec * FLOPS_PER_PARAM_TOKEN * n_params as f64,
            tokens_per_sec,
            n_params,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    pub n_params: usize,
    /// Tokens the job trains on: batch × accumulation × context × steps.
    pub tokens: f64,
    pub flops: f64,
    pub tokens_per_sec: f64,
    pub seconds: f64,
    pub train_bytes: f64,
}

pub fn estimate(model: &gpt::Config, train: &TrainConfig, throughput: &Throughput) -> Estimate {
    let n_params = model.n_params();
    let n = n_params as f64;
    // In f64: a big run passes 2^32 tokens, and usize is 32 bits in the browser.
    let tokens = train.tokens_per_step(model.block_size) as f64 * train.max_steps as f64;
    let flops = FLOPS_PER_PARAM_TOKEN * n * tokens;
    let tokens_per_sec = throughput.flops_per_sec() / (FLOPS_PER_PARAM_TOKEN * n);
    Estimate {
        n_params,
        tokens,
        flops,
        tokens_per_sec,
        seconds: tokens / tokens_per_sec,
        train_bytes: TRAIN_BYTES_PER_PARAM * n,
    }
}

/// The vocabulary a character-level job on `corpus` had, from an earlier job's stored spec
/// (the runner fills `vocab_size` in at submit).
pub fn known_char_vocab(jobs: &[Job], corpus: &str) -> Option<usize> {
    jobs.iter().find_map(|j| match &j.spec.task {
        Task::Pretrain {
            model,
            tokenizer: engine::protocol::TokenizerSpec::Char,
        } if j.spec.corpus == corpus && model.vocab_size > 0 => Some(model.vocab_size),
        _ => None,
    })
}

/// A number with an SI prefix (`1.23 P`), for FLOPs and FLOP/s.
pub fn si(x: f64) -> String {
    let (v, unit) = match x.abs() {
        a if a >= 1e18 => (x / 1e18, "E"),
        a if a >= 1e15 => (x / 1e15, "P"),
        a if a >= 1e12 => (x / 1e12, "T"),
        a if a >= 1e9 => (x / 1e9, "G"),
        a if a >= 1e6 => (x / 1e6, "M"),
        a if a >= 1e3 => (x / 1e3, "k"),
        _ => (x, ""),
    };
    // Three significant figures.
    if v.abs() >= 100.0 {
        format!("{v:.0} {unit}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1} {unit}")
    } else {
        format!("{v:.2} {unit}")
    }
}

/// Seconds as "42 s", "3 min 20 s", "2 h 05 min" or "3.1 days".
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "–".into();
    }
    let s = seconds.round() as u64;
    if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else if s < 3600 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else if s < 86_400 * 2 {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    } else {
        format!("{:.1} days", seconds / 86_400.0)
    }
}

/// Bytes as MB or GB (decimal).
pub fn bytes(b: f64) -> String {
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else {
        format!("{:.2} MB", b / 1e6)
    }
}
