//! The learning-rate schedule of nanoGPT's `get_lr`: linear warm-up, cosine decay, floor.

/// Learning rate at optimizer step `step` (0-based).
pub fn learning_rate(
    step: usize,
    max_lr: f64,
    min_lr: f64,
    warmup_steps: usize,
    decay_steps: usize,
) -> f64 {
    // 1) linear warm-up from max_lr / (warmup + 1) to max_lr
    if step < warmup_steps {
        return max_lr * (step + 1) as f64 / (warmup_steps + 1) as f64;
    }
    // 3) past the decay horizon, stay at the floor
    if step >= decay_steps {
        return min_lr;
    }
    // 2) cosine decay from max_lr down to min_lr
    let ratio = (step - warmup_steps) as f64 / (decay_steps - warmup_steps) as f64;
    let coeff = 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos());
    min_lr + coeff * (max_lr - min_lr)
}
