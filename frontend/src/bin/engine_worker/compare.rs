//! Lesson C3's comparison: two variants of the transformer block trained side by side on the
//! same data from the same seed, one optimizer step of each in turn, so both curves grow
//! together. Each step reports the loss and the gradient norm of every block.

use candle_core::Device;
use engine::data::Dataset;
use engine::model::gpt;
use engine::tokenizer::{CharTokenizer, Tokenizer};
use engine::train::{TrainConfig, Trainer};
use frontend::worker::Event;
use frontend::worker::protocol::CompareSpec;

use super::{
    SLICE_MS, STATE, TRAIN_CORPUS_BYTES, VAL_FRACTION, fetch_text, now, post, prefix, yield_now,
};

/// Validation batches averaged per evaluation (each is one forward pass).
const EVAL_BATCHES: usize = 4;

/// One side of the comparison: its trainer until it finishes or diverges.
struct Side {
    trainer: Option<Trainer>,
}

pub async fn run(run: u32, spec: CompareSpec, generation: u32) -> Result<(), String> {
    let stale = move || STATE.with(|s| s.borrow().generation != generation);
    post(&Event::Progress {
        what: "loading the corpus".into(),
        done: 0,
        total: 1,
    });
    let corpus = fetch_text(&spec.corpus_url).await?;
    let corpus = prefix(&corpus, TRAIN_CORPUS_BYTES);
    let tokenizer: Tokenizer = CharTokenizer::from_text(corpus)
        .map_err(|e| e.to_string())?
        .into();
    let data = Dataset::new(corpus, tokenizer.clone(), VAL_FRACTION).map_err(|e| e.to_string())?;
    // Same data, same seed, same schedule (D1's: 5% warm-up, cosine to a tenth): only the
    // block differs.
    let train = TrainConfig {
        batch_size: spec.batch_size,
        max_steps: spec.max_steps,
        learning_rate: spec.learning_rate,
        min_lr: spec.learning_rate / 10.0,
        warmup_steps: (spec.max_steps / 20).max(1),
        eval_interval: spec.eval_interval,
        eval_batches: EVAL_BATCHES,
        ..TrainConfig::default()
    };
    let mut sides = Vec::with_capacity(2);
    for (i, v) in spec.variants.iter().enumerate() {
        let model = gpt::Config {
            vocab_size: tokenizer.vocab_size(),
            block_size: spec.block_size,
            n_layer: spec.n_layer,
            n_head: spec.n_head,
            n_embd: spec.n_embd,
            norm: v.norm,
            ffn: v.ffn,
            norm_placement: v.norm_placement,
            residual: v.residual,
            ..Default::default()
        };
        let n_params = model.n_params();
        let mut trainer = Trainer::new(model, train.clone(), data.clone(), &Device::Cpu)
            .map_err(|e| e.to_string())?;
        post(&Event::VariantStarted {
            run,
            variant: i,
            n_params,
        });
        // The untrained model's loss is the first point of each curve (≈ ln vocab).
        let e = trainer.estimate_loss().map_err(|e| e.to_string())?;
        post(&Event::VariantEval {
            run,
            variant: i,
            step: 0,
            val: e.val,
        });
        sides.push(Side {
            trainer: Some(trainer),
        });
        yield_now().await;
        if stale() {
            return Ok(());
        }
    }
    loop {
        yield_now().await;
        if stale() {
            return Ok(());
        }
        let t0 = now();
        while now() - t0 < SLICE_MS {
            for (i, side) in sides.iter_mut().enumerate() {
                step(run, i, side, spec.eval_interval);
            }
            if sides.iter().all(|s| s.trainer.is_none()) {
                post(&Event::VariantsDone { run });
                return Ok(());
            }
        }
    }
}

/// One step of one side (nothing once it is done), with an evaluation when one is due. A side
/// that fails, e.g. a loss that diverged, is reported and dropped; the other goes on.
fn step(run: u32, variant: usize, side: &mut Side, eval_interval: usize) {
    let Some(t) = side.trainer.as_mut() else {
        return;
    };
    let result = (|| -> Result<bool, String> {
        let m = t.step().map_err(|e| e.to_string())?;
        post(&Event::VariantStep {
            run,
            variant,
            step: m.step,
            loss: m.loss,
            grad_norm: m.grad_norm,
            layer_grad_norms: t.layer_grad_norms(),
        });
        if m.step % eval_interval.max(1) == 0 || t.is_done() {
            let e = t.estimate_loss().map_err(|e| e.to_string())?;
            post(&Event::VariantEval {
                run,
                variant,
                step: m.step,
                val: e.val,
            });
        }
        Ok(t.is_done())
    })();
    match result {
        Ok(false) => {}
        Ok(true) => side.trainer = None,
        Err(message) => {
            post(&Event::VariantFailed {
                run,
                variant,
                message,
            });
            side.trainer = None;
        }
    }
}
