//! The optimizer half of [`Trainer`](super::Trainer) for any model: a seeded initialisation,
//! then steps of gradient accumulation, global-norm clipping, the warm-up + cosine schedule
//! and AdamW, around a loss the caller computes. The BERT and T5 of lesson C4 train with it;
//! their batches and losses are theirs (`bert::mask_tokens`, `t5::Seq2SeqBatch`), the update
//! is the GPT's, so the three models of the lesson differ in their masks and objectives only.

use std::collections::HashMap;

use candle_core::{Tensor, Var};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use web_time::Instant;

use super::adamw::AdamW;
use super::{StepMetrics, TrainConfig, clip_grad_norm};
use crate::data::step_rng;
use crate::{Error, Result};

/// One micro-batch's loss and the number of tokens it predicted (for tokens/s).
pub struct MicroLoss {
    pub loss: Tensor,
    pub tokens: usize,
}

pub struct Stepper {
    config: TrainConfig,
    /// The trainable parameters, sorted by name so that order is stable across runs.
    params: Vec<(String, Var)>,
    optimizer: AdamW,
    step: usize,
}

impl Stepper {
    /// Takes over the variables of a model built on `varmap` and initialises them from
    /// `config.seed`: N(0, 0.02) for matrices and embeddings (BERT's `initializer_range`, GPT-2's
    /// init), ones for norm gains, zeros for biases.
    pub fn new(varmap: &VarMap, config: TrainConfig) -> Result<Self> {
        config.validate()?;
        let mut params: Vec<(String, Var)> = varmap
            .data()
            .lock()
            .map_err(|_| Error::Checkpoint("parameter map poisoned".into()))?
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let normal = Normal::new(0.0f32, 0.02).map_err(|e| Error::config("init", e.to_string()))?;
        for (name, var) in &params {
            let n = var.elem_count();
            let is_norm =
                name.contains("ln_") || name.contains("layer_norm") || name.ends_with("ln.weight");
            let values: Vec<f32> = if name.ends_with("bias") {
                vec![0.0; n]
            } else if is_norm {
                vec![1.0; n]
            } else {
                (0..n).map(|_| normal.sample(&mut rng)).collect()
            };
            var.set(&Tensor::from_vec(values, var.shape(), var.device())?)?;
        }
        let optimizer = AdamW::new(&params, config.beta1, config.beta2, config.weight_decay)?;
        Ok(Self {
            config,
            params,
            optimizer,
            step: 0,
        })
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Optimizer steps completed.
    pub fn step_count(&self) -> usize {
        self.step
    }

    pub fn is_done(&self) -> bool {
        self.step >= self.config.max_steps
    }

    /// Whether the loop should evaluate now (every `eval_interval` steps and at the end).
    pub fn should_eval(&self) -> bool {
        self.is_done()
            || (self.config.eval_interval > 0
                && self.step.is_multiple_of(self.config.eval_interval))
    }

    /// One optimizer step over `grad_accum_steps` micro-batches; `micro_loss` draws its batch
    /// from the step's random stream (a function of seed and step only, as `Trainer`'s).
    pub fn step(
        &mut self,
        mut micro_loss: impl FnMut(&mut ChaCha8Rng) -> Result<MicroLoss>,
    ) -> Result<StepMetrics> {
        let start = Instant::now();
        let accum = self.config.grad_accum_steps;
        let mut rng = step_rng(self.config.seed, self.step, 0);
        let mut grads: Vec<Option<Tensor>> = vec![None; self.params.len()];
        let (mut loss_sum, mut tokens) = (0f32, 0usize);
        for _ in 0..accum {
            let micro = micro_loss(&mut rng)?;
            loss_sum += micro.loss.to_scalar::<f32>()?;
            tokens += micro.tokens;
            // Scale so that the summed gradient is the gradient of the mean loss.
            let store = (micro.loss / accum as f64)?.backward()?;
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
        let (grads, grad_norm) = clip_grad_norm(grads, self.config.grad_clip)?;
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
        Ok(StepMetrics {
            step: self.step,
            loss,
            lr,
            grad_norm,
            tokens_per_sec: tokens as f64 / start.elapsed().as_secs_f64().max(1e-9),
        })
    }

    /// The weights as they are now, by name, for a checkpoint.
    pub fn weights(&self) -> HashMap<String, Tensor> {
        self.params
            .iter()
            .map(|(name, var)| (name.clone(), var.as_tensor().detach()))
            .collect()
    }
}
