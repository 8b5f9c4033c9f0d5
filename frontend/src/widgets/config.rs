//! What a lesson's ```` ```widget NAME ```` block may set: one typed configuration per widget,
//! in one enum tagged by the widget's name.
//!
//! This file is the only list of widgets and their settings. `build.rs` includes it with
//! `#[path]` and deserializes every widget block into [`WidgetConfig`], so an unknown widget,
//! an unknown key (at any depth) or a wrongly typed value stops the build with the lesson's
//! file and line; the site gets the checked value back as JSON and `widgets::Widget` matches
//! the enum. It depends on serde and the engine only (no Leptos), so the build script can
//! compile it.
//!
//! A key a block leaves out takes its widget's default below. The training widgets hold the
//! engine's own types as `[model]` and `[train]` tables: a table that is present is a whole
//! `gpt::Config` or `TrainConfig`, whose keys left out take those types' serde defaults (not
//! the widget's), so a lesson spells out every setting it means.

use engine::model::gpt::{self, BlockVariant, Ffn, Norm, NormPlacement};
use engine::train::TrainConfig;
use serde::{Deserialize, Serialize};

/// Every widget's configuration, by the name a lesson gives after ```` ```widget ````.
///
/// Externally tagged (`{"train-gpt": {...}}` in JSON) so that the build script can hand the
/// block's TOML straight to the variant and keep the TOML parser's line numbers; an
/// internally tagged enum buffers its content and loses them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WidgetConfig {
    TrainGpt(TrainGptConfig),
    SampleShipped(SampleShippedConfig),
    BigramCounts(BigramCountsConfig),
    Architectures(ArchitecturesConfig),
    Runner(RunnerConfig),
    KvCacheBench(KvCacheBenchConfig),
    GpuBench(GpuBenchConfig),
    SamplingPlayground(SamplingPlaygroundConfig),
    BpeSteps(BpeStepsConfig),
    TokenizerPlayground(TokenizerPlaygroundConfig),
    AttentionHeatmap(AttentionHeatmapConfig),
    PositionExplorer(PositionExplorerConfig),
    QuantCompare(QuantCompareConfig),
    BlockCompare(BlockCompareConfig),
}

/// A character-level GPT's shape for a widget; `vocab_size` is left 0 because the run sets it
/// from its corpus.
fn char_gpt(n_layer: usize, n_head: usize, n_embd: usize, block_size: usize) -> gpt::Config {
    gpt::Config {
        vocab_size: 0,
        block_size,
        n_layer,
        n_head,
        n_embd,
        ..gpt::Config::default()
    }
}

/// A widget's training schedule in lesson D1's habits (nanoGPT's): warm up over the first 5 %
/// of the steps, decay to a tenth of the peak rate, 4 batches per evaluation.
fn widget_schedule(
    batch_size: usize,
    learning_rate: f64,
    max_steps: usize,
    eval_interval: usize,
) -> TrainConfig {
    TrainConfig {
        batch_size,
        learning_rate,
        min_lr: learning_rate / 10.0,
        max_steps,
        warmup_steps: (max_steps / 20).max(1),
        eval_interval,
        eval_batches: 4,
        ..TrainConfig::default()
    }
}

/// Lesson D1: trains a character-level GPT in the engine worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainGptConfig {
    /// URL of the training text.
    pub corpus: String,
    pub model: gpt::Config,
    pub train: TrainConfig,
    /// Steps between samples shown while training.
    pub sample_interval: usize,
}

impl Default for TrainGptConfig {
    fn default() -> Self {
        Self {
            corpus: "/data/kjv.txt".into(),
            model: char_gpt(2, 4, 64, 64),
            train: widget_schedule(16, 3e-3, 600, 50),
            sample_interval: 100,
        }
    }
}

/// Lesson C3: two variants of the transformer block trained side by side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlockCompareConfig {
    /// URL of the training text.
    pub corpus: String,
    /// The shape both sides share; each side's block parts (norm, FFN, norm placement,
    /// residuals) come from `a` and `b`, not from here.
    pub model: gpt::Config,
    pub train: TrainConfig,
    /// The variants selected when the page opens.
    pub a: BlockVariant,
    pub b: BlockVariant,
}

const GPT2_BLOCK: BlockVariant = BlockVariant {
    norm: Norm::LayerNorm,
    ffn: Ffn::Gelu,
    norm_placement: NormPlacement::Pre,
    residual: true,
};

impl Default for BlockCompareConfig {
    fn default() -> Self {
        Self {
            corpus: "/data/kjv.txt".into(),
            model: char_gpt(4, 4, 32, 32),
            train: widget_schedule(8, 3e-3, 150, 25),
            a: GPT2_BLOCK,
            b: BlockVariant {
                residual: false,
                ..GPT2_BLOCK
            },
        }
    }
}

/// Lesson D3 (and the `/runner` page): the job form's starting values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunnerConfig {
    /// The name of a corpus on the runner.
    pub corpus: String,
    pub model: gpt::Config,
    /// The form shows `batch_size`, `learning_rate` and `max_steps`; it derives the rest of
    /// the schedule from them.
    pub train: TrainConfig,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        // A model a CPU runner trains in a few minutes: 2 layers × 128, ~0.4 M parameters.
        Self {
            corpus: "kjv".into(),
            model: char_gpt(2, 4, 128, 64),
            train: TrainConfig {
                batch_size: 16,
                learning_rate: 3e-3,
                max_steps: 1000,
                ..TrainConfig::default()
            },
        }
    }
}

/// Samples from the shipped model or the one being trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SampleShippedConfig {
    /// URL of the checkpoint folder.
    pub model: String,
    pub prompt: String,
    pub max_new_tokens: usize,
    pub temperature: f32,
}

impl Default for SampleShippedConfig {
    fn default() -> Self {
        Self {
            model: "/models/char-kjv".into(),
            prompt: "And God said".into(),
            max_new_tokens: 300,
            temperature: 0.8,
        }
    }
}

/// The character bigram table of a text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BigramCountsConfig {
    pub text: String,
}

impl Default for BigramCountsConfig {
    fn default() -> Self {
        Self {
            text: "in the beginning god created the heaven and the earth".into(),
        }
    }
}

/// Lesson C4: BERT, GPT and T5 side by side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArchitecturesConfig {
    /// URLs of the three checkpoint folders.
    pub bert: String,
    pub gpt: String,
    pub t5: String,
    /// BERT's text, `_` where it fills in.
    pub masked: String,
    pub prompt: String,
    pub number: u32,
}

impl Default for ArchitecturesConfig {
    fn default() -> Self {
        Self {
            bert: "/models/bert-kjv".into(),
            gpt: "/models/char-kjv".into(),
            t5: "/models/t5-numbers".into(),
            masked: "And God _aid, Let there be light".into(),
            prompt: "And God said".into(),
            number: 4207,
        }
    }
}

/// Generation with and without the KV cache.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KvCacheBenchConfig {
    pub n_tokens: usize,
}

impl Default for KvCacheBenchConfig {
    fn default() -> Self {
        Self { n_tokens: 256 }
    }
}

/// Lesson E4: WebGPU kernels against the CPU path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpuBenchConfig {
    /// Matmul sizes measured.
    pub sizes: Vec<usize>,
    /// URL of the checkpoint folder generated from.
    pub model: String,
    /// Tokens generated on each device.
    pub tokens: usize,
}

impl Default for GpuBenchConfig {
    fn default() -> Self {
        Self {
            sizes: vec![64, 128, 256, 512, 1024, 2048],
            model: "/models/char-kjv".into(),
            tokens: 64,
        }
    }
}

/// The decoding playground.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingPlaygroundConfig {
    /// URL of the checkpoint folder.
    pub model: String,
    pub prompt: String,
    pub temperature: f32,
    pub seed: u64,
}

impl Default for SamplingPlaygroundConfig {
    fn default() -> Self {
        Self {
            model: "/models/char-kjv".into(),
            prompt: "In the beginning God created the heaven and the ".into(),
            temperature: 1.0,
            seed: 42,
        }
    }
}

/// BPE one merge at a time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BpeStepsConfig {
    pub text: String,
    /// How many merges the widget allows.
    pub merges: usize,
}

impl Default for BpeStepsConfig {
    fn default() -> Self {
        Self {
            text: "the cat sat on the mat with the hat".into(),
            merges: 12,
        }
    }
}

/// One text under three tokenizers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenizerPlaygroundConfig {
    pub text: String,
    /// Corpus our BPE is trained on.
    pub corpus: String,
    pub vocab_size: usize,
    /// URL of the shipped BPE: a tokenizer JSON file or a checkpoint folder.
    pub shipped: String,
}

impl Default for TokenizerPlaygroundConfig {
    fn default() -> Self {
        Self {
            text: "In the beginning God created the heaven and the earth.".into(),
            corpus: "/data/kjv.txt".into(),
            vocab_size: 512,
            shipped: "/models/bpe-kjv.json".into(),
        }
    }
}

/// The shipped model's attention weights over a sentence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttentionHeatmapConfig {
    /// URL of the checkpoint folder.
    pub model: String,
    pub text: String,
    /// "single" (one head, large, with hover) or "heads" (all heads of a layer, small).
    pub layout: String,
}

impl Default for AttentionHeatmapConfig {
    fn default() -> Self {
        Self {
            model: "/models/char-kjv".into(),
            text: "And God said, Let there be light: and there was light.".into(),
            layout: "single".into(),
        }
    }
}

/// The position encodings a GPT config can pick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PositionExplorerConfig {
    pub positions: usize,
    pub dim: usize,
}

impl Default for PositionExplorerConfig {
    fn default() -> Self {
        Self {
            positions: 48,
            dim: 32,
        }
    }
}

/// Lesson E3: the shipped model quantized and pruned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuantCompareConfig {
    /// URL of the checkpoint folder.
    pub model: String,
    /// URL of the text the perplexities are measured on.
    pub corpus: String,
    pub group_size: usize,
    pub sparsities: Vec<f32>,
    /// Validation windows of one block each for every perplexity.
    pub windows: usize,
    pub prompt: String,
    pub sample_tokens: usize,
}

impl Default for QuantCompareConfig {
    fn default() -> Self {
        Self {
            model: "/models/char-kjv".into(),
            corpus: "/data/kjv.txt".into(),
            group_size: 32,
            sparsities: vec![0.0, 0.25, 0.5, 0.7, 0.8, 0.9],
            windows: 64,
            prompt: "And God said".into(),
            sample_tokens: 80,
        }
    }
}
