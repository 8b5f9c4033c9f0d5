//! Checks a job spec at submit time, so that a job whose config cannot work is refused with a
//! 400 naming the field, never accepted and failed later.

use engine::data::Dataset;
use engine::model::gpt;
use engine::protocol::{JobSpec, Task, TokenizerSpec};

use crate::corpora::Corpora;
use crate::error::{Error, Result};
use crate::executor::{Executor, build_tokenizer, read_meta};
use crate::store::Store;

/// Smallest and largest BPE vocabularies accepted: the 256 bytes (no merges),
/// and what a u16-sized embedding table comfortably holds.
const BPE_VOCAB: std::ops::RangeInclusive<usize> = 256..=65_536;

/// Returns the spec to store: for pretraining, `task.model.vocab_size` set to the
/// tokenizer's (a char tokenizer's is known now; a BPE's is the size asked for).
pub fn check(
    spec: &JobSpec,
    corpora: &Corpora,
    store: &Store,
    executor: &Executor,
) -> Result<JobSpec> {
    spec.train.validate().map_err(|e| field_error(e, "train"))?;
    if !(spec.val_fraction > 0.0 && spec.val_fraction < 1.0) {
        return Err(Error::bad_request(
            "val_fraction",
            format!(
                "{} is not in (0, 1); hold out a share such as 0.1 for the validation loss",
                spec.val_fraction
            ),
        ));
    }
    let text = corpora.text(&spec.corpus, "corpus")?;
    let (model, tokenizer) = match &spec.task {
        Task::Pretrain { model, tokenizer } => {
            let mut model = model.clone();
            let tokenizer = match tokenizer {
                TokenizerSpec::Char => {
                    build_tokenizer(tokenizer, &text).map_err(|e| field_error(e, "corpus"))?
                }
                TokenizerSpec::Bpe { vocab_size } => {
                    if !BPE_VOCAB.contains(vocab_size) {
                        return Err(Error::bad_request(
                            "task.tokenizer.vocab_size",
                            format!(
                                "{vocab_size} is not in {}..={}; a byte-level BPE needs the 256 bytes plus merges",
                                BPE_VOCAB.start(),
                                BPE_VOCAB.end()
                            ),
                        ));
                    }
                    // Training the BPE is the job's first stage; it is too slow for a
                    // request. Its tokens are never more than the corpus's bytes, so the
                    // size check below uses bytes.
                    model.vocab_size = *vocab_size;
                    model.validate().map_err(|e| field_error(e, "task.model"))?;
                    check_length(text.len(), spec.val_fraction, model.block_size)?;
                    return Ok(with_model(spec, model));
                }
            };
            model.vocab_size = tokenizer.vocab_size();
            model.validate().map_err(|e| field_error(e, "task.model"))?;
            (model, tokenizer)
        }
        Task::FineTune { base_job } => {
            let field = "task.base_job";
            let base = store.job(*base_job).map_err(|_| {
                Error::bad_request(field, format!("no job {base_job} to fine-tune from"))
            })?;
            let step = base.checkpoint_step.ok_or_else(|| {
                Error::bad_request(
                    field,
                    format!(
                        "job {base_job} has no checkpoint yet; wait for its first checkpoint or for it to finish"
                    ),
                )
            })?;
            let meta = read_meta(&executor.checkpoint_dir(*base_job, step))?;
            (meta.model, meta.tokenizer)
        }
    };
    // The corpus must tokenize (a char tokenizer knows only its own characters) and hold a
    // window of block_size + 1 tokens in each split.
    let data =
        Dataset::new(&text, tokenizer, spec.val_fraction).map_err(|e| field_error(e, "corpus"))?;
    data.check_block_size(model.block_size)
        .map_err(|e| field_error(e, "corpus"))?;
    Ok(with_model(spec, model))
}

/// `spec` with a pretraining job's model replaced by `model`.
fn with_model(spec: &JobSpec, model: gpt::Config) -> JobSpec {
    let mut spec = spec.clone();
    if let Task::Pretrain { model: m, .. } = &mut spec.task {
        *m = model;
    }
    spec
}

fn check_length(n_tokens: usize, val_fraction: f32, block_size: usize) -> Result<()> {
    let n_val = n_tokens - ((1.0 - val_fraction as f64) * n_tokens as f64) as usize;
    if n_val <= block_size {
        return Err(Error::bad_request(
            "corpus",
            format!(
                "its validation split has at most {n_val} tokens, fewer than one window of block_size + 1 = {}; use a longer corpus or a smaller block_size",
                block_size + 1
            ),
        ));
    }
    Ok(())
}

/// Turns an engine error into a 400: a config error names `prefix.field`, any other names
/// `prefix` itself.
fn field_error(e: engine::Error, prefix: &str) -> Error {
    match e {
        engine::Error::Config { field, message } => {
            Error::bad_request(format!("{prefix}.{field}"), message)
        }
        other => Error::bad_request(prefix, other.to_string()),
    }
}
