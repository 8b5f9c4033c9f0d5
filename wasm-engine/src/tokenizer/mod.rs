//! Tokenizers: text to token ids and back.
//!
//! Two kinds, both trained on the course's own text: a character tokenizer (one id per
//! distinct character, as in nanoGPT's `shakespeare_char`) and a byte-level BPE trained from
//! scratch as GPT-2's is (mirroring Karpathy's minbpe `RegexTokenizer`), which reads and writes
//! Hugging Face's `tokenizer.json`. A checkpoint stores its tokenizer as the serde form of
//! [`Tokenizer`].

mod bpe;
mod chars;
mod hf;

pub use bpe::{BpeTokenizer, GPT2_SPLIT_PATTERN, Pair, pre_tokenize};
pub use chars::CharTokenizer;

use serde::{Deserialize, Serialize};

use crate::Result;

/// Any tokenizer a model can be trained with. In JSON it is tagged by `kind`:
/// `{"kind": "char", "chars": "..."}` or `{"kind": "bpe", "merges": [[104, 101], ...]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Tokenizer {
    Char(CharTokenizer),
    Bpe(BpeTokenizer),
}

impl Tokenizer {
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            Tokenizer::Char(t) => t.encode(text),
            Tokenizer::Bpe(t) => t.encode(text),
        }
    }

    /// Text for `ids`. A BPE id sequence that ends inside a multi-byte character (a model may
    /// sample one) decodes with U+FFFD in its place rather than failing.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        match self {
            Tokenizer::Char(t) => t.decode(ids),
            Tokenizer::Bpe(t) => t.decode(ids),
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Tokenizer::Char(t) => t.vocab_size(),
            Tokenizer::Bpe(t) => t.vocab_size(),
        }
    }
}

impl From<CharTokenizer> for Tokenizer {
    fn from(t: CharTokenizer) -> Self {
        Tokenizer::Char(t)
    }
}

impl From<BpeTokenizer> for Tokenizer {
    fn from(t: BpeTokenizer) -> Self {
        Tokenizer::Bpe(t)
    }
}
