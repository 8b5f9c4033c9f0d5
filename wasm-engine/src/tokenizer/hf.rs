//! Hugging Face `tokenizer.json` for [`BpeTokenizer`], through the `tokenizers` crate.
//!
//! The file is GPT-2's layout: a `ByteLevel` pre-tokenizer (GPT-2's regex, no added prefix
//! space) and decoder around a `BPE` model. The model's strings are bytes written in GPT-2's
//! byte-to-unicode alphabet (`bytes_to_unicode` in openai/gpt-2 `src/encoder.py`) so that every
//! byte is a printable character: the space is `Ġ`, the newline `Ċ`. Merges are in rank order.

use std::collections::HashMap;
use std::str::FromStr;

use serde::Deserialize;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::ModelWrapper;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::PostProcessorWrapper;

use super::bpe::{BpeTokenizer, Pair};
use crate::{Error, Result};

/// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes stand for themselves; the others
/// (controls, space, DEL, NBSP, soft hyphen) are shifted to U+0100 onward, in byte order.
pub(crate) fn bytes_to_unicode() -> [char; 256] {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut alphabet = ['\0'; 256];
    let mut shifted = 0;
    for b in 0..=255u8 {
        alphabet[b as usize] = if printable(b) {
            char::from(b)
        } else {
            shifted += 1;
            char::from_u32(255 + shifted).expect("U+0100..U+0143 are characters")
        };
    }
    alphabet
}

/// The pre-tokenizer and decoder both files and `tokenizers` use: GPT-2's regex, and no space
/// added before the text (our training did not add one).
fn byte_level() -> ByteLevel {
    ByteLevel::new(false, true, true)
}

fn hf_error(what: &str) -> impl Fn(tokenizers::Error) -> Error + '_ {
    move |e| Error::Tokenizer(format!("{what}: {e}"))
}

pub(crate) fn to_json(bpe: &BpeTokenizer) -> Result<String> {
    let alphabet = bytes_to_unicode();
    let spell = |id: u32| -> String {
        bpe.token_bytes(id)
            .unwrap_or_default()
            .iter()
            .map(|&b| alphabet[b as usize])
            .collect()
    };
    let vocab: Vocab = (0..bpe.vocab_size() as u32)
        .map(|id| (spell(id), id))
        .collect();
    let merges = bpe
        .merges()
        .iter()
        .map(|&(left, right)| (spell(left), spell(right)))
        .collect();
    let model = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(hf_error("building the tokenizer.json model failed"))?;
    let mut tokenizer = tokenizers::Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(byte_level()));
    tokenizer.with_decoder(Some(byte_level()));
    tokenizer
        .to_string(true)
        .map_err(hf_error("writing tokenizer.json failed"))
}

/// The parts of a `BPE` model we read back, as `tokenizers` serializes them (merges as pairs,
/// in rank order, whatever form the file used).
#[derive(Deserialize)]
struct HfBpe {
    vocab: HashMap<String, u32>,
    merges: Vec<(String, String)>,
}

pub(crate) fn from_json(json: &str) -> Result<BpeTokenizer> {
    let unsupported = |what: String| {
        Error::Tokenizer(format!(
            "this tokenizer.json {what}; only byte-level BPE files laid out as this engine \
             writes them (GPT-2's pre-tokenizer, no normalizer or added tokens) can be loaded"
        ))
    };
    let tokenizer = tokenizers::Tokenizer::from_str(json).map_err(hf_error(
        "tokenizer.json is not a valid Hugging Face tokenizer",
    ))?;

    // Anything that changes which ids a text gets must be what our encoder does.
    if tokenizer.get_normalizer().is_some() {
        return Err(unsupported("has a normalizer".into()));
    }
    match tokenizer.get_pre_tokenizer() {
        Some(PreTokenizerWrapper::ByteLevel(b)) if b.use_regex && !b.add_prefix_space => {}
        Some(PreTokenizerWrapper::ByteLevel(_)) => {
            return Err(unsupported(
                "has a ByteLevel pre-tokenizer that adds a prefix space or skips the regex".into(),
            ));
        }
        other => {
            return Err(unsupported(format!(
                "has pre-tokenizer {other:?} instead of ByteLevel"
            )));
        }
    }
    match tokenizer.get_post_processor() {
        // ByteLevel post-processing only adjusts offsets.
        None | Some(PostProcessorWrapper::ByteLevel(_)) => {}
        Some(other) => return Err(unsupported(format!("has post-processor {other:?}"))),
    }
    match tokenizer.get_decoder() {
        None | Some(DecoderWrapper::ByteLevel(_)) => {}
        Some(other) => return Err(unsupported(format!("has decoder {other:?}"))),
    }
    let added = tokenizer.get_added_tokens_decoder();
    if !added.is_empty() {
        return Err(unsupported(format!("has {} added tokens", added.len())));
    }
    let ModelWrapper::BPE(model) = tokenizer.get_model() else {
        return Err(unsupported("has a model that is not BPE".into()));
    };
    if model.dropout.is_some_and(|p| p > 0.0) {
        return Err(unsupported("has BPE dropout".into()));
    }
    if model.continuing_subword_prefix.is_some() || model.end_of_word_suffix.is_some() {
        return Err(unsupported("has a subword prefix or suffix".into()));
    }
    if model.ignore_merges {
        return Err(unsupported("sets ignore_merges".into()));
    }

    let HfBpe { vocab, merges } = serde_json::from_value(serde_json::to_value(model)?)?;
    // `tokenizers` has checked that every merge's tokens are in the vocabulary.
    let id = |token: &str| vocab.get(token).copied().unwrap_or(u32::MAX);
    let merges: Vec<Pair> = merges.iter().map(|(l, r)| (id(l), id(r))).collect();
    let bpe = BpeTokenizer::from_merges(merges)?;

    // The file's vocabulary must be the one its merges build, id for id.
    if vocab.len() != bpe.vocab_size() {
        return Err(unsupported(format!(
            "has {} tokens where 256 bytes and {} merges make {}",
            vocab.len(),
            bpe.merges().len(),
            bpe.vocab_size()
        )));
    }
    let alphabet = bytes_to_unicode();
    let byte_of: HashMap<char, u8> = (0..=255u8).map(|b| (alphabet[b as usize], b)).collect();
    let mut by_id: Vec<(&String, u32)> = vocab.iter().map(|(t, &id)| (t, id)).collect();
    by_id.sort_unstable_by_key(|&(_, id)| id);
    for (token, id) in by_id {
        let bytes: Option<Vec<u8>> = token.chars().map(|c| byte_of.get(&c).copied()).collect();
        if bytes.as_deref() != bpe.token_bytes(id) {
            let made = bpe.token_bytes(id).map_or("no such token".into(), |b| {
                format!("{:?}", String::from_utf8_lossy(b))
            });
            return Err(unsupported(format!(
                "has token {id} = {token:?}, but its merges make token {id} {made}"
            )));
        }
    }
    Ok(bpe)
}
