//! Messages between the page and the engine worker, as serde enums sent as JSON text.

use engine::bench::{BenchConfig, Figure};
use engine::model::gpt;
use serde::{Deserialize, Serialize};

/// The model a training widget asks for (the rest of `gpt::Config` is fixed by the widget).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSpec {
    /// URL of the corpus, fetched by the worker.
    pub corpus_url: String,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub block_size: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub max_steps: usize,
    pub eval_interval: usize,
    /// Steps between samples shown while training.
    pub sample_interval: usize,
}

/// One model of lesson C3's comparison: the parts of the block.
pub use engine::model::gpt::BlockVariant;

/// Lesson C3's side-by-side run: two variants of the same small character-level GPT, trained
/// on the same data from the same seed for the same number of steps, one step of each in turn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompareSpec {
    pub corpus_url: String,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub block_size: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub max_steps: usize,
    /// Steps between validation losses.
    pub eval_interval: usize,
    pub variants: [BlockVariant; 2],
}

/// Which tokenizer the playground colours a text with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerChoice {
    Char,
    /// Our BPE, trained in this tab by `TrainBpe`.
    Trained,
    /// The BPE shipped with the site.
    Shipped,
}

/// Page to worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    StartTraining {
        run: u32,
        spec: TrainSpec,
    },
    Pause,
    Resume,
    /// Ends a training run or a comparison.
    Stop,
    /// Lesson C3: trains both variants of `spec`; answered by `VariantStarted`, then
    /// `VariantStep`s and `VariantEval`s of both, then `VariantsDone`.
    CompareVariants {
        run: u32,
        spec: CompareSpec,
    },
    /// Loads a shipped checkpoint folder (`config.json` + `model.safetensors`) by URL.
    LoadModel {
        url: String,
    },
    /// Samples from the shipped model (`trained == false`) or the one being trained.
    Generate {
        trained: bool,
        prompt: String,
        max_new_tokens: usize,
        temperature: f32,
        seed: u64,
    },
    /// Trains our BPE on the first `corpus_bytes` of a corpus.
    TrainBpe {
        corpus_url: String,
        corpus_bytes: usize,
        vocab_size: usize,
    },
    /// Loads the shipped BPE from a checkpoint's `config.json`.
    LoadShippedBpe {
        url: String,
    },
    /// Attention weights of the checkpoint at `url` (loaded if it is not) over `text`.
    AttentionMaps {
        url: String,
        text: String,
    },
    Tokenize {
        text: String,
        with: TokenizerChoice,
    },
    /// Decoding playground: runs the loaded model at `url` for `steps` tokens after `prompt`
    /// with `sampling` (seeded, so the same request gives the same text), then reports the
    /// distribution of the next token and the token the seed draws from it.
    DecodeStep {
        url: String,
        prompt: String,
        steps: usize,
        sampling: engine::sample::SamplingConfig,
    },
    /// KV-cache benchmark: generates `n_tokens` tokens with and without the cache on a
    /// seeded random model of the shipped model's shape with a context of `n_tokens + 1`.
    KvBench {
        n_tokens: usize,
    },
    /// Runs the cases of `engine::bench` (what `cargo xtask bench` runs natively) here.
    Bench {
        config: BenchConfig,
    },
    /// Where sampling runs: on WebGPU when `webgpu` and an adapter exists, else on the CPU.
    /// Answered by `Event::Device`.
    SetDevice {
        webgpu: bool,
    },
    /// Lesson E4's benchmark: the WebGPU roofline (copy bandwidth, multiply-add rate),
    /// matmul GFLOP/s at each square size on WebGPU and on the CPU, and greedy generation
    /// tokens/s of the checkpoint at `model` on both.
    GpuBench {
        sizes: Vec<usize>,
        model: String,
        tokens: usize,
    },
    /// Lesson E3: saves the checkpoint at `model` as fp32, int8 (symmetric and asymmetric) and
    /// int4 in groups of `group_size`, loads each back, and measures the file, the perplexity
    /// on `windows` windows of the validation split of `corpus` and a seeded sample after
    /// `prompt`; then prunes it at each of `sparsities` and measures the perplexity again.
    /// Answered by `QuantFormat`s, `QuantPrune`s and `QuantDone`, with `Progress` ("quantize").
    QuantCompare {
        model: String,
        corpus: String,
        group_size: usize,
        sparsities: Vec<f32>,
        windows: usize,
        prompt: String,
        sample_tokens: usize,
    },
    /// Lesson C4: the BERT at `url` fills every `_` of `text`. Answered by `MaskFilled`.
    FillMask {
        url: String,
        text: String,
    },
    /// Lesson C4: the GPT at `url` continues `prompt` greedily. Answered by `Continued`.
    Continue {
        url: String,
        prompt: String,
        max_new_tokens: usize,
    },
    /// Lesson C4: the T5 at `url` writes `number`, given to it in words, as digits. Answered
    /// by `Translated`.
    Translate {
        url: String,
        number: u32,
    },
}

/// Where the engine worker computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComputeDevice {
    Cpu,
    Webgpu,
}

impl ComputeDevice {
    pub fn label(self) -> &'static str {
        match self {
            ComputeDevice::Cpu => "CPU (wasm)",
            ComputeDevice::Webgpu => "WebGPU",
        }
    }
}

/// One token of a tokenized text, for colouring.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Piece {
    pub id: u32,
    /// The token's text (bytes that are not valid UTF-8 on their own shown as `\xNN`).
    pub text: String,
}

/// One possible next token of the decoding playground.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub id: u32,
    pub text: String,
    /// softmax(z / T) after the repetition penalty, before the cuts (T = 1 when greedy).
    pub prob: f32,
    /// The probability it is drawn with, after top-k, top-p and renormalising (0 if cut).
    pub kept: f32,
}

/// One `[MASK]` position of lesson C4's fill-in, with BERT's best guesses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaskFill {
    pub position: usize,
    /// `(character, probability)`, most likely first.
    pub candidates: Vec<(String, f32)>,
}

/// Worker to page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Ready,
    /// Long work under way: `done` of `total` (`what` says which).
    Progress {
        what: String,
        done: usize,
        total: usize,
    },
    TrainingStarted {
        run: u32,
        n_params: usize,
        vocab_size: usize,
        train_tokens: usize,
    },
    Step {
        run: u32,
        step: usize,
        loss: f32,
        lr: f64,
        tokens_per_sec: f64,
    },
    Eval {
        run: u32,
        step: usize,
        train: f32,
        val: f32,
    },
    Sample {
        run: u32,
        step: usize,
        text: String,
    },
    Paused {
        run: u32,
    },
    Resumed {
        run: u32,
    },
    TrainingDone {
        run: u32,
        step: usize,
    },
    /// Variant `variant` (0 or 1) of a `CompareVariants` run is built.
    VariantStarted {
        run: u32,
        variant: usize,
        n_params: usize,
    },
    /// One optimizer step of a variant, with the gradient's norm before clipping, globally and
    /// per block (first layer first).
    VariantStep {
        run: u32,
        variant: usize,
        step: usize,
        loss: f32,
        grad_norm: f32,
        layer_grad_norms: Vec<f32>,
    },
    /// Validation loss of a variant (at step 0 and every `eval_interval` steps).
    VariantEval {
        run: u32,
        variant: usize,
        step: usize,
        val: f32,
    },
    /// A variant stopped early (its loss diverged); the other one goes on.
    VariantFailed {
        run: u32,
        variant: usize,
        message: String,
    },
    VariantsDone {
        run: u32,
    },
    ModelLoaded {
        url: String,
        n_params: usize,
        vocab_size: usize,
        step: usize,
        val_loss: Option<f32>,
    },
    /// Attention weights over a text: `maps[layer][head][query][key]`, one token per row.
    AttentionMaps {
        url: String,
        tokens: Vec<String>,
        maps: Vec<Vec<Vec<Vec<f32>>>>,
    },
    /// Text generated so far (sent in pieces as it comes).
    Generated {
        trained: bool,
        text: String,
        done: bool,
        tokens_per_sec: f64,
        /// Where the tokens were computed.
        device: ComputeDevice,
    },
    BpeReady {
        shipped: bool,
        vocab_size: usize,
        merges: usize,
    },
    Tokens {
        with: TokenizerChoice,
        pieces: Vec<Piece>,
    },
    /// One figure of a `Bench` run; `BenchDone` follows the last.
    BenchFigure {
        figure: Figure,
    },
    BenchDone,
    /// Answer to `DecodeStep`: `text` is the prompt and `steps` generated tokens; the
    /// candidates are the most likely next tokens, most likely first.
    Decoded {
        steps: usize,
        text: String,
        candidates: Vec<Candidate>,
        /// Tokens kept by top-k (`None` when off or keeping everything).
        top_k_cut: Option<usize>,
        /// Tokens kept after the top-p cut (`None` when off).
        top_p_cut: Option<usize>,
        /// The token the seed draws next.
        next: Candidate,
    },
    /// Answer to `KvBench`: time and cache size per generated token, both ways.
    KvProfile {
        cached: Vec<engine::bench::KvPoint>,
        uncached: Vec<engine::bench::KvPoint>,
    },
    /// Answer to `SetDevice`, and sent again when WebGPU fails and sampling falls back.
    Device {
        /// Where sampling runs now.
        active: ComputeDevice,
        /// The WebGPU adapter's name, when one was found.
        adapter: Option<String>,
        /// Why WebGPU is not in use although asked for (no adapter, an error).
        notice: Option<String>,
    },
    /// The measured ceilings of the WebGPU adapter, the roofline of lesson E4.
    GpuRoof {
        peak_gflops: f64,
        bandwidth_gbs: f64,
    },
    /// One matmul of `GpuBench`: `size`² × `size`² on `device`.
    MatmulRate {
        device: ComputeDevice,
        size: usize,
        gflops: f64,
    },
    /// Greedy generation speed of `GpuBench`'s model on `device`, and the text it made.
    GenerationRate {
        device: ComputeDevice,
        tokens_per_sec: f64,
        text: String,
    },
    GpuBenchDone,
    /// One weight format of `QuantCompare`, of a model of `n_params` parameters.
    QuantFormat {
        n_params: usize,
        report: engine::quant::FormatReport,
    },
    /// One point of `QuantCompare`'s pruning curve.
    QuantPrune {
        point: engine::quant::prune::PrunePoint,
    },
    QuantDone,
    /// Answer to `FillMask`: the input as BERT read it (`_` is `[MASK]`), the most likely
    /// characters at each masked position, and the encoder's self-attention mask
    /// (`mask[query][key]`, true where it may attend).
    MaskFilled {
        tokens: Vec<String>,
        fills: Vec<MaskFill>,
        mask: Vec<Vec<bool>>,
    },
    /// Answer to `Continue`: the prompt and the generated text as tokens, and the causal mask
    /// over all of them.
    Continued {
        prompt_tokens: Vec<String>,
        generated_tokens: Vec<String>,
        mask: Vec<Vec<bool>>,
    },
    /// Answer to `Translate`: the source (the words, then EOS), the decoder's inputs (the
    /// start token, then the digits written), what it wrote, and the three masks it ran with.
    Translated {
        number: u32,
        source: String,
        /// Whether `number` was held out of training.
        held_out: bool,
        source_tokens: Vec<String>,
        target_tokens: Vec<String>,
        output: String,
        encoder_mask: Vec<Vec<bool>>,
        decoder_mask: Vec<Vec<bool>>,
        cross_mask: Vec<Vec<bool>>,
    },
    Error {
        what: String,
        message: String,
    },
}
