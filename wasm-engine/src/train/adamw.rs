//! AdamW: Adam with weight decay decoupled from the gradient (Loshchilov & Hutter, "Decoupled
//! Weight Decay Regularization", 2019), as `torch.optim.AdamW` computes it.
//!
//! Written out rather than taken from candle-nn so that its moments can be saved in a
//! checkpoint: a run resumed after a crash continues exactly where it stopped.

use std::collections::HashMap;

use candle_core::{Tensor, Var};

use crate::Result;

/// One parameter with its first and second moment estimates.
struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
    /// nanoGPT decays only matrices (weights of linear layers and embeddings), never biases
    /// or LayerNorm gains.
    decay: bool,
}

pub struct AdamW {
    slots: Vec<Slot>,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    /// Number of updates applied so far (Adam's t).
    t: usize,
}

impl AdamW {
    /// `params` in a fixed order (the gradients passed to `step` follow it).
    pub fn new(
        params: &[(String, Var)],
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
    ) -> Result<Self> {
        let slots = params
            .iter()
            .map(|(name, var)| {
                Ok(Slot {
                    name: name.clone(),
                    var: var.clone(),
                    m: var.zeros_like()?,
                    v: var.zeros_like()?,
                    decay: var.rank() >= 2,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            slots,
            beta1,
            beta2,
            eps: 1e-8,
            weight_decay,
            t: 0,
        })
    }

    /// One update with learning rate `lr`; `grads[i]` is the gradient of parameter `i`.
    pub fn step(&mut self, grads: &[Tensor], lr: f64) -> Result<()> {
        self.t += 1;
        let bias1 = 1.0 - self.beta1.powi(self.t as i32);
        let bias2 = 1.0 - self.beta2.powi(self.t as i32);
        for (slot, g) in self.slots.iter_mut().zip(grads) {
            // m ← β₁m + (1-β₁)g ;  v ← β₂v + (1-β₂)g²
            slot.m = ((&slot.m * self.beta1)? + (g * (1.0 - self.beta1))?)?;
            slot.v = ((&slot.v * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            // θ ← θ(1 - lr·λ) - lr · m̂ / (√v̂ + ε)
            let m_hat = (&slot.m / bias1)?;
            let v_hat = (&slot.v / bias2)?;
            let update = (m_hat / (v_hat.sqrt()? + self.eps)?)?;
            let theta = slot.var.as_tensor();
            let theta = if slot.decay {
                (theta * (1.0 - lr * self.weight_decay))?
            } else {
                theta.clone()
            };
            slot.var.set(&(theta - (update * lr)?)?)?;
        }
        Ok(())
    }

    /// The moments as named tensors (`m.<param>`, `v.<param>`) for a checkpoint.
    pub fn state(&self) -> HashMap<String, Tensor> {
        self.slots
            .iter()
            .flat_map(|s| {
                [
                    (format!("m.{}", s.name), s.m.clone()),
                    (format!("v.{}", s.name), s.v.clone()),
                ]
            })
            .collect()
    }

    pub fn updates(&self) -> usize {
        self.t
    }

    /// Restores moments saved by `state` after `updates` steps.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>, updates: usize) -> Result<()> {
        for slot in &mut self.slots {
            for (prefix, moment) in [("m", &mut slot.m), ("v", &mut slot.v)] {
                let key = format!("{prefix}.{}", slot.name);
                let saved = state.get(&key).ok_or_else(|| {
                    crate::Error::Checkpoint(format!("optimizer state lacks '{key}'"))
                })?;
                if saved.shape() != moment.shape() {
                    return Err(crate::Error::Checkpoint(format!(
                        "optimizer state '{key}' has shape {:?}, expected {:?}",
                        saved.dims(),
                        moment.dims()
                    )));
                }
                *moment = saved.to_device(moment.device())?;
            }
        }
        self.t = updates;
        Ok(())
    }
}
