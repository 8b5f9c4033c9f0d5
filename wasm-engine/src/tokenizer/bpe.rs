//! Byte-level byte-pair encoding, trained from scratch: GPT-2's tokenizer (Radford et al. 2019,
//! "Language Models are Unsupervised Multitask Learners", §2.2), written out as plainly as
//! Karpathy's minbpe `RegexTokenizer` (github.com/karpathy/minbpe, `minbpe/regex.py`).
//!
//! 1. Split the text into chunks with GPT-2's regex, so merges never cross a word, number or
//!    punctuation boundary.
//! 2. Start from the 256 byte values as tokens: any UTF-8 text is a sequence of them.
//! 3. Count every adjacent pair of tokens, merge the most frequent pair into a new token, and
//!    repeat until the vocabulary has the size asked for.
//!
//! Encoding replays the merges in the order they were learned. The result reads and writes
//! Hugging Face's `tokenizer.json` (see `hf.rs`) and encodes exactly as `tokenizers` does.

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

use fancy_regex::Regex;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// GPT-2's pre-tokenization pattern (openai/gpt-2 `src/encoder.py`): English contractions,
/// letters, digits and other symbols each with an optional leading space, then whitespace.
/// `\s+(?!\S)` leaves the last space of a run to start the next word, so " the" stays one chunk.
pub const GPT2_SPLIT_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

static GPT2_SPLIT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(GPT2_SPLIT_PATTERN).expect("GPT-2's pattern is a valid regex"));

/// Two adjacent token ids.
pub type Pair = (u32, u32);

/// The 256 single-byte tokens come first: token `b` is the byte `b`.
const BYTE_TOKENS: usize = 256;

/// Splits `text` into the chunks BPE works within, with GPT-2's pattern. The chunks cover the
/// whole text: concatenated they give it back.
pub fn pre_tokenize(text: &str) -> Result<Vec<&str>> {
    let mut chunks = Vec::new();
    let mut end = 0;
    for m in GPT2_SPLIT.find_iter(text) {
        let m = m.map_err(|e| {
            Error::Tokenizer(format!(
                "pre-tokenizing failed: {e}; split the text into smaller pieces"
            ))
        })?;
        // The pattern matches every character, so there is never a gap; keeping one anyway
        // (as `tokenizers`' `Split` does) is what keeps encoding lossless for certain.
        if m.start() > end {
            chunks.push(&text[end..m.start()]);
        }
        chunks.push(m.as_str());
        end = m.end();
    }
    if end < text.len() {
        chunks.push(&text[end..]);
    }
    Ok(chunks)
}

/// A byte-level BPE tokenizer: the 256 bytes, then one token per learned merge.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "BpeMerges", into = "BpeMerges")]
pub struct BpeTokenizer {
    /// In the order they were learned: merge `i` makes token `256 + i`.
    merges: Vec<Pair>,
    /// A merge's rank (its place in `merges`), for encoding.
    ranks: HashMap<Pair, u32>,
    /// Each token's bytes, by id.
    vocab: Vec<Vec<u8>>,
}

/// The serde form: the merges alone, as `[[left, right], ...]`; the vocabulary follows from them.
#[derive(Serialize, Deserialize)]
struct BpeMerges {
    merges: Vec<Pair>,
}

/// A distinct chunk of the training text and how many times it occurs.
struct Word {
    ids: Vec<u32>,
    count: u64,
}

impl BpeTokenizer {
    /// Learns `vocab_size - 256` merges from `text`. See [`Self::train_with_progress`].
    pub fn train(text: &str, vocab_size: usize) -> Result<Self> {
        Self::train_with_progress(text, vocab_size, |_, _| {})
    }

    /// Learns `vocab_size - 256` merges from `text`, calling `progress(done, total)` after
    /// each merge.
    ///
    /// Each step merges the most frequent adjacent pair; a tie goes to the smaller pair
    /// `(left, right)`, so training is deterministic. Training stops early, with a smaller
    /// vocabulary, when no pair is left to merge; [`Self::vocab_size`] tells the size reached.
    pub fn train_with_progress(
        text: &str,
        vocab_size: usize,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Self> {
        if vocab_size < BYTE_TOKENS {
            return Err(Error::config(
                "vocab_size",
                format!("must be at least 256 (one token per byte), got {vocab_size}"),
            ));
        }
        if text.is_empty() {
            return Err(Error::Corpus(
                "cannot train a tokenizer on empty text; give it some text".into(),
            ));
        }
        let total = vocab_size - BYTE_TOKENS;

        // 1) Merges stay within a chunk, so equal chunks merge alike: keep each distinct
        // chunk once, with its count. This is what makes training on megabytes fast.
        let mut chunk_counts: HashMap<&str, u64> = HashMap::new();
        for chunk in pre_tokenize(text)? {
            *chunk_counts.entry(chunk).or_default() += 1;
        }
        let mut words: Vec<Word> = chunk_counts
            .into_iter()
            .map(|(chunk, count)| Word {
                ids: chunk.bytes().map(u32::from).collect(),
                count,
            })
            .collect();

        // 2) Count every adjacent pair (minbpe's `get_stats`), and note which words hold it so
        // that a merge revisits only those.
        let mut pair_counts: HashMap<Pair, u64> = HashMap::new();
        let mut pair_words: HashMap<Pair, Vec<usize>> = HashMap::new();
        for (w, word) in words.iter().enumerate() {
            for pair in pairs(&word.ids) {
                *pair_counts.entry(pair).or_default() += word.count;
                index(&mut pair_words, pair, w);
            }
        }

        // 3) Merge the most frequent pair, update the counts of the words it touched, repeat.
        let mut merges: Vec<Pair> = Vec::new();
        while merges.len() < total {
            let Some(pair) = most_frequent(&pair_counts) else {
                break; // every chunk is a single token
            };
            let id = (BYTE_TOKENS + merges.len()) as u32;
            for w in pair_words.remove(&pair).unwrap_or_default() {
                let word = &mut words[w];
                // The index may be stale (the pair was merged away since): skip those words.
                if !pairs(&word.ids).any(|p| p == pair) {
                    continue;
                }
                for old in pairs(&word.ids) {
                    remove_count(&mut pair_counts, old, word.count);
                }
                merge(&mut word.ids, pair, id);
                for new in pairs(&word.ids) {
                    *pair_counts.entry(new).or_default() += word.count;
                    // Only pairs with the new token are new to this word; others are indexed.
                    if new.0 == id || new.1 == id {
                        index(&mut pair_words, new, w);
                    }
                }
            }
            merges.push(pair);
            progress(merges.len(), total);
        }
        Self::from_merges(merges)
    }

    /// The tokenizer made by `merges`, in rank order: merge `i` joins two tokens that already
    /// exist (ids below `256 + i`) into token `256 + i`, whose bytes no other token spells.
    ///
    /// Training never spells a string twice. Say tokens C and D are adjacent when (C, D) is
    /// merged, and their bytes already spell T = (A, B). Tokens never split, so those bytes
    /// had a token boundary at both ends at every earlier step and the merges inside them saw
    /// only them, as in the chunk where T was made: at T's step they were A, B here too, and
    /// would have become T. Merges from a file are checked, because `tokenizer.json` maps
    /// each string to one id and encoding by rank (ours and `tokenizers`') relies on it.
    pub fn from_merges(merges: Vec<Pair>) -> Result<Self> {
        let mut vocab: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        let mut spelled: HashMap<Vec<u8>, u32> =
            vocab.iter().cloned().zip(0..BYTE_TOKENS as u32).collect();
        let mut ranks = HashMap::with_capacity(merges.len());
        for (rank, &(left, right)) in merges.iter().enumerate() {
            let id = vocab.len() as u32;
            if left >= id || right >= id {
                return Err(Error::Tokenizer(format!(
                    "merge {rank} joins ({left}, {right}) but only tokens below {id} exist \
                     before it; merges must be in the order they were learned"
                )));
            }
            let bytes = [&vocab[left as usize][..], &vocab[right as usize][..]].concat();
            if let Some(&other) = spelled.get(&bytes) {
                return Err(Error::Tokenizer(format!(
                    "merge {rank} ({left}, {right}) spells {:?}, which token {other} already \
                     spells; each token must have distinct bytes",
                    String::from_utf8_lossy(&bytes)
                )));
            }
            if ranks.insert((left, right), rank as u32).is_some() {
                return Err(Error::Tokenizer(format!(
                    "merge {rank} ({left}, {right}) is listed twice; each pair merges once"
                )));
            }
            spelled.insert(bytes.clone(), id);
            vocab.push(bytes);
        }
        Ok(Self {
            merges,
            ranks,
            vocab,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// The learned merges in rank order: merge `i` made token `256 + i`.
    pub fn merges(&self) -> &[Pair] {
        &self.merges
    }

    /// The bytes of token `id`. A token need not be valid UTF-8 on its own (it may hold part
    /// of a character); show it with `String::from_utf8_lossy`.
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.vocab.get(id as usize).map(Vec::as_slice)
    }

    /// The ids of `text`. Any UTF-8 text encodes, and decodes back unchanged.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(text.len() / 2);
        // Texts repeat their words, and equal chunks encode alike: encode each one once.
        let mut seen: HashMap<&str, Vec<u32>> = HashMap::new();
        for chunk in pre_tokenize(text)? {
            let chunk_ids = seen
                .entry(chunk)
                .or_insert_with(|| self.encode_chunk(chunk.as_bytes()));
            ids.extend_from_slice(chunk_ids);
        }
        Ok(ids)
    }

    /// minbpe's `_encode_chunk`: while some adjacent pair has a merge, apply the merge learned
    /// first (lowest rank) wherever it occurs.
    fn encode_chunk(&self, bytes: &[u8]) -> Vec<u32> {
        let mut ids: Vec<u32> = bytes.iter().map(|&b| u32::from(b)).collect();
        while ids.len() >= 2 {
            let lowest = pairs(&ids)
                .filter_map(|pair| self.ranks.get(&pair).map(|&rank| (rank, pair)))
                .min();
            let Some((rank, pair)) = lowest else { break };
            merge(&mut ids, pair, BYTE_TOKENS as u32 + rank);
        }
        ids
    }

    /// The bytes `ids` stand for.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let token = self.token_bytes(id).ok_or_else(|| {
                Error::Tokenizer(format!(
                    "token id {id} is out of range for a vocabulary of {} tokens; \
                     decode ids made by this tokenizer",
                    self.vocab.len()
                ))
            })?;
            bytes.extend_from_slice(token);
        }
        Ok(bytes)
    }

    /// The text `ids` stand for. Ids that split a character (a model may sample such a
    /// sequence) give U+FFFD in its place, as minbpe's `errors="replace"` does.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let bytes = self.decode_bytes(ids)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// This tokenizer as a Hugging Face `tokenizer.json`.
    pub fn to_hf_json(&self) -> Result<String> {
        super::hf::to_json(self)
    }

    /// A tokenizer from a Hugging Face `tokenizer.json` laid out as [`Self::to_hf_json`] writes
    /// it: a byte-level BPE whose ids are the 256 bytes and then one token per merge.
    pub fn from_hf_json(json: &str) -> Result<Self> {
        super::hf::from_json(json)
    }
}

/// The adjacent pairs of `ids`, overlapping ones included: `aaa` holds `(a, a)` twice.
fn pairs(ids: &[u32]) -> impl Iterator<Item = Pair> + '_ {
    ids.windows(2).map(|w| (w[0], w[1]))
}

/// minbpe's `merge`: replaces each occurrence of `pair` in `ids`, left to right, with `new_id`.
fn merge(ids: &mut Vec<u32>, pair: Pair, new_id: u32) {
    let mut out = 0;
    let mut i = 0;
    while i < ids.len() {
        if i + 1 < ids.len() && (ids[i], ids[i + 1]) == pair {
            ids[out] = new_id;
            i += 2;
        } else {
            ids[out] = ids[i];
            i += 1;
        }
        out += 1;
    }
    ids.truncate(out);
}

/// The pair with the highest count; among equals, the smallest pair.
fn most_frequent(pair_counts: &HashMap<Pair, u64>) -> Option<Pair> {
    pair_counts
        .iter()
        .max_by(|(pa, ca), (pb, cb)| ca.cmp(cb).then(pb.cmp(pa)))
        .map(|(&pair, _)| pair)
}

/// Notes that word `w` holds `pair`. A word's pairs are indexed together, so a repeat is the
/// last entry.
fn index(pair_words: &mut HashMap<Pair, Vec<usize>>, pair: Pair, w: usize) {
    let words = pair_words.entry(pair).or_default();
    if words.last() != Some(&w) {
        words.push(w);
    }
}

/// Lowers a pair's count, dropping pairs that no longer occur so the search stays small.
fn remove_count(pair_counts: &mut HashMap<Pair, u64>, pair: Pair, count: u64) {
    if let Some(c) = pair_counts.get_mut(&pair) {
        *c -= count;
        if *c == 0 {
            pair_counts.remove(&pair);
        }
    }
}

impl PartialEq for BpeTokenizer {
    /// The merges determine everything else.
    fn eq(&self, other: &Self) -> bool {
        self.merges == other.merges
    }
}

impl Eq for BpeTokenizer {}

impl fmt::Debug for BpeTokenizer {
    /// The vocabulary can be tens of thousands of tokens: print its size only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BpeTokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("merges", &self.merges.len())
            .finish()
    }
}

impl TryFrom<BpeMerges> for BpeTokenizer {
    type Error = Error;

    fn try_from(m: BpeMerges) -> Result<Self> {
        Self::from_merges(m.merges)
    }
}

impl From<BpeTokenizer> for BpeMerges {
    fn from(t: BpeTokenizer) -> Self {
        Self { merges: t.merges }
    }
}
