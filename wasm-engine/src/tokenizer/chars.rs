//! The character tokenizer of nanoGPT's `data/shakespeare_char/prepare.py`: the vocabulary is
//! the sorted distinct characters of a text and a character's id is its place in that list.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One token per character of the training text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CharVocab", into = "CharVocab")]
pub struct CharTokenizer {
    /// Sorted and distinct, so encoding is a binary search and id `i` is `chars[i]`.
    chars: Vec<char>,
}

/// The serde form: the vocabulary as one string, `"\n !'(),-.:;?ABC..."`, readable in a
/// checkpoint's `config.json`.
#[derive(Serialize, Deserialize)]
struct CharVocab {
    chars: String,
}

impl CharTokenizer {
    /// The vocabulary of `text`: its distinct characters in code point order.
    pub fn from_text(text: &str) -> Result<Self> {
        if text.is_empty() {
            return Err(Error::Corpus(
                "cannot build a character vocabulary from empty text; give it some text".into(),
            ));
        }
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        Ok(Self { chars })
    }

    pub fn vocab_size(&self) -> usize {
        self.chars.len()
    }

    /// The vocabulary in id order.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// The character with id `id`, if there is one.
    pub fn token(&self, id: u32) -> Option<char> {
        self.chars.get(id as usize).copied()
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        text.chars()
            .map(|c| {
                self.chars
                    .binary_search(&c)
                    .map(|id| id as u32)
                    .map_err(|_| {
                        Error::Tokenizer(format!(
                            "character {c:?} (U+{:04X}) is not in the vocabulary of {} characters; \
                             build the tokenizer from text that contains it, or use a BPE tokenizer",
                            c as u32,
                            self.chars.len()
                        ))
                    })
            })
            .collect()
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        ids.iter()
            .map(|&id| {
                self.token(id).ok_or_else(|| {
                    Error::Tokenizer(format!(
                        "token id {id} is out of range for a vocabulary of {} characters; \
                         decode ids made by this tokenizer",
                        self.chars.len()
                    ))
                })
            })
            .collect()
    }
}

impl TryFrom<CharVocab> for CharTokenizer {
    type Error = String;

    fn try_from(vocab: CharVocab) -> Result<Self, String> {
        let chars: Vec<char> = vocab.chars.chars().collect();
        if chars.is_empty() {
            return Err("a character vocabulary cannot be empty".into());
        }
        if let Some(w) = chars.windows(2).find(|w| w[0] >= w[1]) {
            return Err(format!(
                "a character vocabulary must be sorted and distinct, but {:?} comes before {:?}",
                w[0], w[1]
            ));
        }
        Ok(Self { chars })
    }
}

impl From<CharTokenizer> for CharVocab {
    fn from(t: CharTokenizer) -> Self {
        Self {
            chars: t.chars.into_iter().collect(),
        }
    }
}
