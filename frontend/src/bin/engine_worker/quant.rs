//! Lesson E3's comparison in the worker: every weight format of the shipped model and its
//! pruning curve, measured by `engine::quant` one step at a time, yielding between steps so
//! the page shows progress as it comes.

use engine::data::Dataset;
use engine::quant::{self, Scheme, prune::prune_point};
use frontend::worker::Event;

use super::{VAL_FRACTION, fetch_text, load_checkpoint, post, yield_now};

/// Most validation windows a comparison evaluates (each is one block of the model).
const MAX_WINDOWS: usize = 256;

pub async fn compare(
    model: &str,
    corpus: &str,
    group_size: usize,
    sparsities: &[f32],
    windows: usize,
    prompt: &str,
    sample_tokens: usize,
) -> Result<(), String> {
    if windows == 0 || windows > MAX_WINDOWS {
        return Err(format!(
            "{windows} validation windows is outside 1..={MAX_WINDOWS}"
        ));
    }
    let schemes = [
        None,
        Some(Scheme::Int8Symmetric),
        Some(Scheme::Int8Asymmetric),
        Some(Scheme::Int4 { group_size }),
    ];
    let total = 1 + schemes.len() + sparsities.len();
    let progress = |done: usize| {
        post(&Event::Progress {
            what: "quantize".into(),
            done,
            total,
        })
    };
    progress(0);
    let ckpt = load_checkpoint(model).await?;
    // The split the model was trained with: the corpus's last tenth is validation.
    let text = fetch_text(corpus).await?;
    let data = Dataset::new(&text, ckpt.meta.tokenizer.clone(), VAL_FRACTION)
        .map_err(|e| format!("{corpus}: {e}"))?;
    let n_params = ckpt.meta.model.n_params();
    progress(1);
    for (i, scheme) in schemes.into_iter().enumerate() {
        yield_now().await;
        let report =
            quant::compare_format(&ckpt, scheme, &data.val, windows, prompt, sample_tokens, 7)
                .map_err(|e| e.to_string())?;
        post(&Event::QuantFormat { n_params, report });
        progress(2 + i);
    }
    for (i, &sparsity) in sparsities.iter().enumerate() {
        yield_now().await;
        let point = prune_point(&ckpt, sparsity, &data.val, windows).map_err(|e| e.to_string())?;
        post(&Event::QuantPrune { point });
        progress(2 + schemes.len() + i);
    }
    post(&Event::QuantDone);
    Ok(())
}
