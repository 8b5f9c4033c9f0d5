//! Corpora and batching: tokenize a text once, split it into train and validation, and cut
//! random windows out of it (nanoGPT's `get_batch`).

pub mod numbers;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// The corpus the site ships: the King James Bible (see `static/data/README.md`).
pub const KJV: &str = "kjv";

/// Which part of a dataset a batch comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Val,
}

/// A tokenized corpus split into a training part and a validation part (its tail).
#[derive(Clone, Debug)]
pub struct Dataset {
    pub tokenizer: Tokenizer,
    pub train: Vec<u32>,
    pub val: Vec<u32>,
}

impl Dataset {
    /// Tokenizes `text` and keeps its last `val_fraction` for validation.
    pub fn new(text: &str, tokenizer: Tokenizer, val_fraction: f32) -> Result<Self> {
        if text.is_empty() {
            return Err(Error::Corpus(
                "the corpus is empty; give it some text".into(),
            ));
        }
        if !(0.0..1.0).contains(&val_fraction) {
            return Err(Error::config(
                "val_fraction",
                format!("{val_fraction} is not in [0, 1)"),
            ));
        }
        let ids = tokenizer.encode(text)?;
        let n_train = ((1.0 - val_fraction as f64) * ids.len() as f64) as usize;
        Ok(Self {
            train: ids[..n_train].to_vec(),
            val: ids[n_train..].to_vec(),
            tokenizer,
        })
    }

    pub fn split(&self, split: Split) -> &[u32] {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
        }
    }

    /// Checks that both splits hold at least one window of `block_size + 1` tokens.
    pub fn check_block_size(&self, block_size: usize) -> Result<()> {
        for (name, ids) in [("train", &self.train), ("validation", &self.val)] {
            if ids.len() <= block_size {
                return Err(Error::Corpus(format!(
                    "the {name} split has {} tokens, fewer than one window of block_size + 1 = {}; use a longer corpus or a smaller block_size",
                    ids.len(),
                    block_size + 1
                )));
            }
        }
        Ok(())
    }

    /// `batch_size` random windows: inputs `x` and targets `y` (x shifted by one), each
    /// `batch_size * block_size` ids in row-major order.
    pub fn batch(
        &self,
        split: Split,
        batch_size: usize,
        block_size: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<(Vec<u32>, Vec<u32>)> {
        let ids = self.split(split);
        if ids.len() <= block_size {
            self.check_block_size(block_size)?;
        }
        let mut x = Vec::with_capacity(batch_size * block_size);
        let mut y = Vec::with_capacity(batch_size * block_size);
        for _ in 0..batch_size {
            let start = rng.random_range(0..ids.len() - block_size);
            x.extend_from_slice(&ids[start..start + block_size]);
            y.extend_from_slice(&ids[start + 1..start + block_size + 1]);
        }
        Ok((x, y))
    }
}

/// The random stream for one step of a run: a function of (seed, step, purpose) only, so a
/// run resumed from a checkpoint draws exactly the batches it would have drawn.
pub fn step_rng(seed: u64, step: usize, purpose: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(purpose);
    rng.set_word_pos((step as u128) << 20);
    rng
}
