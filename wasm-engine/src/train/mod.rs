//! Training a GPT one optimizer step at a time, as nanoGPT's `train.py` does in its loop:
//! sample a batch, forward, backward (accumulated over micro-batches), clip the gradient's
//! global norm, set the scheduled learning rate, update with AdamW.
//!
//! A UI or the runner calls [`Trainer::step`] in its own loop, so it decides when to evaluate,
//! draw, checkpoint, pause or cancel.

pub mod adamw;
pub mod schedule;
pub mod stepper;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use web_time::Instant;

use crate::checkpoint::{self, Checkpoint, CheckpointMeta};
use crate::data::{Dataset, Split, step_rng};
use crate::model::gpt::{self, Gpt};
use crate::{Error, Result};

use adamw::AdamW;

/// Everything about a run that is not the model's shape. Defaults suit a small char-level
/// model on a laptop CPU (nanoGPT's `shakespeare_char` config, scaled down).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Seeds the weight initialisation and every batch.
    pub seed: u64,
    /// Sequences per micro-batch.
    pub batch_size: usize,
    /// Micro-batches whose gradients are summed before one optimizer step; the effective
    /// batch is `batch_size * grad_accum_steps` sequences.
    pub grad_accum_steps: usize,
    pub max_steps: usize,
    /// Peak learning rate, reached at the end of warm-up.
    pub learning_rate: f64,
    /// Floor of the cosine decay (nanoGPT: about learning_rate / 10).
    pub min_lr: f64,
    pub warmup_steps: usize,
    /// Decoupled weight decay on matrices only.
    pub weight_decay: f64,
    pub beta1: f64,
    /// nanoGPT uses 0.99 for small models, where few tokens pass per step.
    pub beta2: f64,
    /// Largest allowed global gradient norm; 0 disables clipping.
    pub grad_clip: f64,
    /// Steps between evaluations of train and validation loss.
    pub eval_interval: usize,
    /// Batches averaged per evaluation.
    pub eval_batches: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            seed: 1337,
            batch_size: 16,
            grad_accum_steps: 1,
            max_steps: 2000,
            learning_rate: 1e-3,
            min_lr: 1e-4,
            warmup_steps: 100,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.99,
            grad_clip: 1.0,
            eval_interval: 100,
            eval_batches: 10,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        for (field, value) in [
            ("batch_size", self.batch_size),
            ("grad_accum_steps", self.grad_accum_steps),
            ("max_steps", self.max_steps),
            ("eval_batches", self.eval_batches),
        ] {
            if value == 0 {
                return Err(Error::config(field, "must be greater than 0"));
            }
        }
        let finite_non_negative = [
            ("learning_rate", self.learning_rate),
            ("min_lr", self.min_lr),
            ("weight_decay", self.weight_decay),
            ("grad_clip", self.grad_clip),
        ];
        for (field, value) in finite_non_negative {
            if !value.is_finite() || value < 0.0 {
                return Err(Error::config(
                    field,
                    format!("{value} must be a finite number ≥ 0"),
                ));
            }
        }
        if self.learning_rate == 0.0 {
            return Err(Error::config("learning_rate", "must be greater than 0"));
        }
        for (field, value) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&value) {
                return Err(Error::config(field, format!("{value} is not in [0, 1)")));
            }
        }
        Ok(())
    }

    /// Learning rate for optimizer step `step`.
    pub fn lr_at(&self, step: usize) -> f64 {
        schedule::learning_rate(
            step,
            self.learning_rate,
            self.min_lr,
            self.warmup_steps,
            self.max_steps,
        )
    }

    /// Tokens that one optimizer step consumes for a given context length.
    pub fn tokens_per_step(&self, block_size: usize) -> usize {
        self.batch_size * self.grad_accum_steps * block_size
    }
}

/// What one optimizer step did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Steps completed, counting this one.
    pub step: usize,
    /// Mean training loss over the step's micro-batches.
    pub loss: f32,
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    pub tokens_per_sec: f64,
}

/// Mean loss over `eval_batches` fixed batches of each split.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalLoss {
    pub step: usize,
    pub train: f32,
    pub val: f32,
}

pub struct Trainer {
    model: Gpt,
    model_config: gpt::Config,
    config: TrainConfig,
    /// The trainable parameters, sorted by name so that order is stable across runs.
    params: Vec<(String, Var)>,
    optimizer: AdamW,
    data: Dataset,
    device: Device,
    step: usize,
    last_eval: Option<EvalLoss>,
    /// ‖g‖² of each parameter's gradient in the last step, before clipping, in `params` order.
    grad_sq: Vec<f32>,
}

impl Trainer {
    /// A fresh model, initialised from `config.seed` as nanoGPT's `_init_weights` does.
    pub fn new(
        model_config: gpt::Config,
        config: TrainConfig,
        data: Dataset,
        device: &Device,
    ) -> Result<Self> {
        model_config.validate()?;
        config.validate()?;
        if data.tokenizer.vocab_size() != model_config.vocab_size {
            return Err(Error::config(
                "vocab_size",
                format!(
                    "{} does not match the tokenizer's {} tokens",
                    model_config.vocab_size,
                    data.tokenizer.vocab_size()
                ),
            ));
        }
        data.check_block_size(model_config.block_size)?;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let model = Gpt::new(&model_config, vb)?;
        let mut params: Vec<(String, Var)> = varmap
            .data()
            .lock()
            .map_err(|_| Error::Checkpoint("parameter map poisoned".into()))?
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        init_weights(&params, &model_config, config.seed)?;
        let optimizer = AdamW::new(&params, config.beta1, config.beta2, config.weight_decay)?;
        Ok(Self {
            model,
            model_config,
            config,
            params,
            optimizer,
            data,
            device: device.clone(),
            step: 0,
            last_eval: None,
            grad_sq: Vec::new(),
        })
    }

    pub fn model(&self) -> &Gpt {
        &self.model
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    pub fn model_config(&self) -> &gpt::Config {
        &self.model_config
    }

    pub fn data(&self) -> &Dataset {
        &self.data
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Optimizer steps completed.
    pub fn step_count(&self) -> usize {
        self.step
    }

    pub fn is_done(&self) -> bool {
        self.step >= self.config.max_steps
    }

    pub fn last_eval(&self) -> Option<EvalLoss> {
        self.last_eval
    }

    /// The L2 norm of the gradient of each parameter in the last step, before clipping, by
    /// name (sorted); empty before the first step.
    pub fn grad_norms(&self) -> Vec<(&str, f32)> {
        self.params
            .iter()
            .zip(&self.grad_sq)
            .map(|((name, _), sq)| (name.as_str(), sq.sqrt()))
            .collect()
    }

    /// The L2 norm of the gradient of each block's parameters (`h.{i}.*`, attention, FFN and
    /// both norms) in the last step, before clipping: `√(Σ‖g‖²)` over the block's tensors,
    /// one entry per layer, first layer first. Lesson C3 plots it: without residual
    /// connections the gradient reaching the early layers shrinks.
    pub fn layer_grad_norms(&self) -> Vec<f32> {
        let mut sq = vec![0f32; self.model_config.n_layer];
        for ((name, _), g) in self.params.iter().zip(&self.grad_sq) {
            let layer = name
                .strip_prefix("h.")
                .and_then(|rest| rest.split('.').next())
                .and_then(|i| i.parse::<usize>().ok());
            if let Some(i) = layer.filter(|&i| i < sq.len()) {
                sq[i] += g;
            }
        }
        if self.grad_sq.is_empty() {
            return Vec::new();
        }
        sq.into_iter().map(f32::sqrt).collect()
    }

    /// Whether the loop should evaluate now (every `eval_interval` steps and at the end).
    pub fn should_eval(&self) -> bool {
        self.is_done()
            || (self.config.eval_interval > 0
                && self.step.is_multiple_of(self.config.eval_interval))
    }

    fn to_tensors(&self, (x, y): (Vec<u32>, Vec<u32>), b_sz: usize) -> Result<(Tensor, Tensor)> {
        let t = self.model_config.block_size;
        Ok((
            Tensor::from_vec(x, (b_sz, t), &self.device)?,
            Tensor::from_vec(y, (b_sz, t), &self.device)?,
        ))
    }

    /// One optimizer step over `grad_accum_steps` micro-batches.
    pub fn step(&mut self) -> Result<StepMetrics> {
        let start = Instant::now();
        let (b_sz, t) = (self.config.batch_size, self.model_config.block_size);
        let accum = self.config.grad_accum_steps;
        let mut rng = step_rng(self.config.seed, self.step, 0);
        let mut grads: Vec<Option<Tensor>> = vec![None; self.params.len()];
        let mut loss_sum = 0f32;
        for _ in 0..accum {
            let batch = self.data.batch(Split::Train, b_sz, t, &mut rng)?;
            let (x, y) = self.to_tensors(batch, b_sz)?;
            let (_, loss) = self.model.forward(&x, Some(&y), true)?;
            let loss = loss.ok_or_else(|| Error::config("targets", "no loss computed"))?;
            loss_sum += loss.to_scalar::<f32>()?;
            // Scale so that the summed gradient is the gradient of the mean loss.
            let store = (loss / accum as f64)?.backward()?;
            for (acc, (name, var)) in grads.iter_mut().zip(&self.params) {
                let g = store.get(var).ok_or_else(|| {
                    Error::Checkpoint(format!("parameter '{name}' received no gradient"))
                })?;
                *acc = Some(match acc.take() {
                    Some(sum) => (sum + g)?,
                    None => g.clone(),
                });
            }
        }
        let grads: Vec<Tensor> = grads.into_iter().flatten().collect();
        self.grad_sq = squared_norms(&grads)?;
        let grad_norm = self.grad_sq.iter().sum::<f32>().sqrt();
        let grads = clip_to(grads, grad_norm, self.config.grad_clip)?;
        let lr = self.config.lr_at(self.step);
        self.optimizer.step(&grads, lr)?;
        self.step += 1;
        let loss = loss_sum / accum as f32;
        if !loss.is_finite() {
            return Err(Error::config(
                "learning_rate",
                format!(
                    "training diverged at step {} (loss {loss}); lower the learning rate",
                    self.step
                ),
            ));
        }
        let elapsed = start.elapsed().as_secs_f64().max(1e-9);
        Ok(StepMetrics {
            step: self.step,
            loss,
            lr,
            grad_norm,
            tokens_per_sec: self.config.tokens_per_step(t) as f64 / elapsed,
        })
    }

    /// Mean loss on `eval_batches` batches of each split. The batches are the same at every
    /// evaluation, so successive points of the curve differ only because the model changed.
    pub fn estimate_loss(&mut self) -> Result<EvalLoss> {
        let (b_sz, t) = (self.config.batch_size, self.model_config.block_size);
        let mean = |split: Split, purpose: u64| -> Result<f32> {
            let mut rng = step_rng(self.config.seed, 0, purpose);
            let mut total = 0f32;
            for _ in 0..self.config.eval_batches {
                let batch = self.data.batch(split, b_sz, t, &mut rng)?;
                let (x, y) = self.to_tensors(batch, b_sz)?;
                total += gpt::loss_no_grad(&self.model, &x, &y)?;
            }
            Ok(total / self.config.eval_batches as f32)
        };
        let eval = EvalLoss {
            step: self.step,
            train: mean(Split::Train, 1)?,
            val: mean(Split::Val, 2)?,
        };
        self.last_eval = Some(eval);
        Ok(eval)
    }

    fn weights(&self) -> HashMap<String, Tensor> {
        self.params
            .iter()
            .map(|(name, var)| (name.clone(), var.as_tensor().detach()))
            .collect()
    }

    /// The model as it is now, with its config, tokenizer and training settings.
    pub fn checkpoint(&self) -> Checkpoint {
        let mut checkpoint = Checkpoint::new(
            self.model_config.clone(),
            self.data.tokenizer.clone(),
            self.step,
            self.weights(),
        );
        checkpoint.meta.train = Some(self.config.clone());
        checkpoint.meta.val_loss = self.last_eval.map(|e| e.val);
        checkpoint
    }

    /// Writes a checkpoint plus the optimizer's moments into `dir`, enough for [`Trainer::resume`]
    /// to continue the run exactly. Callers that need atomicity write to a temporary folder
    /// and rename it.
    pub fn save_state(&self, dir: &Path) -> Result<()> {
        self.checkpoint().save(dir)?;
        let state = checkpoint::write_safetensors(&self.optimizer.state(), None)?;
        std::fs::write(dir.join(checkpoint::OPTIMIZER_FILE), state)?;
        Ok(())
    }

    /// A new run that starts from a checkpoint's weights (fine-tuning): step 0, fresh
    /// optimizer moments, the schedule of `config`. `data` must use the checkpoint's tokenizer.
    pub fn from_checkpoint(
        checkpoint: &Checkpoint,
        config: TrainConfig,
        data: Dataset,
        device: &Device,
    ) -> Result<Self> {
        let trainer = Self::new(checkpoint.meta.model.clone(), config, data, device)?;
        for (name, var) in &trainer.params {
            let saved = checkpoint.tensors.get(name).ok_or_else(|| {
                Error::Checkpoint(format!("the checkpoint has no tensor '{name}'"))
            })?;
            if saved.dims() != var.dims() {
                return Err(Error::Checkpoint(format!(
                    "tensor '{name}' has shape {:?} in the checkpoint, the model needs {:?}",
                    saved.dims(),
                    var.dims()
                )));
            }
            var.set(&saved.to_device(device)?)?;
        }
        Ok(trainer)
    }

    /// Continues a run saved by [`Trainer::save_state`] on the same data.
    pub fn resume(dir: &Path, data: Dataset, device: &Device) -> Result<Self> {
        let checkpoint = Checkpoint::load(dir)?;
        let CheckpointMeta { train, step, .. } = checkpoint.meta.clone();
        let train = train.ok_or_else(|| {
            Error::Checkpoint(
                "the checkpoint has no training config, so it cannot be resumed".into(),
            )
        })?;
        let mut trainer = Self::from_checkpoint(&checkpoint, train, data, device)?;
        let optimizer = std::fs::read(dir.join(checkpoint::OPTIMIZER_FILE)).map_err(|e| {
            Error::Checkpoint(format!("cannot read {}: {e}", checkpoint::OPTIMIZER_FILE))
        })?;
        let state = checkpoint::read_safetensors(&optimizer, checkpoint::OPTIMIZER_FILE)?;
        trainer.optimizer.load_state(&state, step)?;
        trainer.step = step;
        trainer.last_eval = checkpoint.meta.val_loss.map(|val| EvalLoss {
            step,
            train: f32::NAN,
            val,
        });
        Ok(trainer)
    }
}

/// Scales `grads` so that their global norm √(Σ‖g‖²) is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_` does (dividing by norm + 1e-6); 0 disables clipping.
/// Returns the gradients and their norm before clipping.
pub fn clip_grad_norm(grads: Vec<Tensor>, max_norm: f64) -> Result<(Vec<Tensor>, f32)> {
    let norm = squared_norms(&grads)?.iter().sum::<f32>().sqrt();
    Ok((clip_to(grads, norm, max_norm)?, norm))
}

/// `‖g‖²` of each tensor.
fn squared_norms(grads: &[Tensor]) -> Result<Vec<f32>> {
    grads
        .iter()
        .map(|g| Ok(g.sqr()?.sum_all()?.to_scalar::<f32>()?))
        .collect()
}

/// Scales `grads`, whose global norm is `norm`, down to `max_norm` (0: unchanged).
fn clip_to(grads: Vec<Tensor>, norm: f32, max_norm: f64) -> Result<Vec<Tensor>> {
    if max_norm <= 0.0 || norm as f64 <= max_norm {
        return Ok(grads);
    }
    let scale = max_norm / (norm as f64 + 1e-6);
    grads.iter().map(|g| Ok((g * scale)?)).collect()
}

/// nanoGPT's `_init_weights`, from a seeded generator so that a run is reproducible:
/// N(0, 0.02) for matrices, N(0, 0.02/√(2·n_layer)) for the projections that write into the
/// residual stream (GPT-2 paper §2.3), zeros for biases, ones for LayerNorm gains.
fn init_weights(params: &[(String, Var)], cfg: &gpt::Config, seed: u64) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let residual_std = 0.02 / (2.0 * cfg.n_layer as f64).sqrt();
    for (name, var) in params {
        let shape = var.shape().clone();
        let n = shape.elem_count();
        let values: Vec<f32> = if name.ends_with(".bias") {
            vec![0.0; n]
        } else if name.contains("ln_") {
            vec![1.0; n]
        } else {
            let std = if name.ends_with("c_proj.weight") {
                residual_std
            } else {
                0.02
            };
            let normal =
                Normal::new(0.0, std as f32).map_err(|e| Error::config("init", e.to_string()))?;
            (0..n).map(|_| normal.sample(&mut rng)).collect()
        };
        var.set(&Tensor::from_vec(values, shape, var.device())?)?;
    }
    Ok(())
}
