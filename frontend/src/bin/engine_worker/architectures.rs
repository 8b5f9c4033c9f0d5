//! Lesson C4's three architectures side by side: BERT fills masked characters, the GPT
//! continues a prompt, T5 turns a number in words into digits; each answer comes with the
//! attention masks the model ran with on that input, taken from the engine's models.

use std::cell::RefCell;
use std::rc::Rc;

use candle_core::{DType, Device};
use engine::checkpoint::ArchCheckpoint;
use engine::data::numbers;
use engine::model::attention;
use engine::model::bert::{self, Bert};
use engine::model::t5::{self, T5};
use engine::sample::SamplingConfig;
use engine::tokenizer::Tokenizer;
use frontend::worker::Event;
use frontend::worker::protocol::MaskFill;

use super::{fetch_bytes, model_at, post};

/// How `[MASK]` is typed: the KJV's characters have no `_`.
const MASK_CHAR: char = '_';
/// Candidates shown per masked position.
const TOP_K: usize = 5;

#[derive(Default)]
struct Loaded {
    bert: Option<(String, Rc<Bert>, Tokenizer)>,
    t5: Option<(String, Rc<T5>, Tokenizer, u64)>,
}

thread_local! {
    static LOADED: RefCell<Loaded> = RefCell::new(Loaded::default());
}

async fn checkpoint<C: serde::Serialize + serde::de::DeserializeOwned>(
    url: &str,
    format: &str,
) -> Result<ArchCheckpoint<C>, String> {
    let base = url.trim_end_matches('/');
    let config = fetch_bytes(&format!("{base}/config.json")).await?;
    let weights = fetch_bytes(&format!("{base}/model.safetensors")).await?;
    ArchCheckpoint::from_parts(&config, &weights, format).map_err(|e| e.to_string())
}

async fn bert_at(url: &str) -> Result<(Rc<Bert>, Tokenizer), String> {
    let cached = LOADED.with(|l| {
        l.borrow()
            .bert
            .as_ref()
            .filter(|(u, ..)| u == url)
            .map(|(_, m, t)| (m.clone(), t.clone()))
    });
    if let Some(found) = cached {
        return Ok(found);
    }
    let ckpt = checkpoint::<bert::Config>(url, bert::FORMAT).await?;
    let vb = ckpt.var_builder(&Device::Cpu).map_err(|e| e.to_string())?;
    let model = Rc::new(Bert::new(&ckpt.meta.model, vb).map_err(|e| e.to_string())?);
    let tokenizer = ckpt.meta.tokenizer;
    LOADED
        .with(|l| l.borrow_mut().bert = Some((url.to_string(), model.clone(), tokenizer.clone())));
    Ok((model, tokenizer))
}

/// The T5 at `url`, its tokenizer and the seed its held-out numbers were drawn with.
async fn t5_at(url: &str) -> Result<(Rc<T5>, Tokenizer, u64), String> {
    let cached = LOADED.with(|l| {
        l.borrow()
            .t5
            .as_ref()
            .filter(|(u, ..)| u == url)
            .map(|(_, m, t, s)| (m.clone(), t.clone(), *s))
    });
    if let Some(found) = cached {
        return Ok(found);
    }
    let ckpt = checkpoint::<t5::Config>(url, t5::FORMAT).await?;
    let vb = ckpt.var_builder(&Device::Cpu).map_err(|e| e.to_string())?;
    let model = Rc::new(T5::new(&ckpt.meta.model, vb).map_err(|e| e.to_string())?);
    let seed = ckpt.meta.train.as_ref().map_or(0, |t| t.seed);
    let tokenizer = ckpt.meta.tokenizer;
    LOADED.with(|l| {
        l.borrow_mut().t5 = Some((url.to_string(), model.clone(), tokenizer.clone(), seed))
    });
    Ok((model, tokenizer, seed))
}

/// T5's character ids back to the tokenizer's (the specials come first).
fn t5_chars(ids: &[u32]) -> Vec<u32> {
    ids.iter()
        .map(|id| id.saturating_sub(t5::N_SPECIAL))
        .collect()
}

fn chars_of(tokenizer: &Tokenizer, ids: &[u32]) -> Result<Vec<String>, String> {
    ids.iter()
        .map(|&id| tokenizer.decode(&[id]).map_err(|e| e.to_string()))
        .collect()
}

pub async fn fill_mask(url: &str, text: &str) -> Result<(), String> {
    let (model, tokenizer) = bert_at(url).await?;
    let mask_id = model.config().mask_id();
    let mut ids = Vec::new();
    let mut tokens = Vec::new();
    for c in text.chars() {
        if c == MASK_CHAR {
            ids.push(mask_id);
            tokens.push(MASK_CHAR.to_string());
        } else {
            let id = tokenizer
                .encode(&c.to_string())
                .map_err(|e| e.to_string())?;
            ids.extend(&id);
            tokens.push(c.to_string());
        }
    }
    if !ids.contains(&mask_id) {
        return Err(format!(
            "put a {MASK_CHAR} where BERT should fill in a character"
        ));
    }
    if ids.len() > model.config().block_size {
        return Err(format!(
            "the text has {} characters; BERT reads at most {}",
            ids.len(),
            model.config().block_size
        ));
    }
    let mut fills = Vec::new();
    for (position, _) in ids.iter().enumerate().filter(|(_, id)| **id == mask_id) {
        let top = model
            .fill(&ids, position, TOP_K)
            .map_err(|e| e.to_string())?;
        let candidates = top
            .into_iter()
            .map(|(id, p)| Ok((chars_of(&tokenizer, &[id])?.concat(), p)))
            .collect::<Result<Vec<_>, String>>()?;
        fills.push(MaskFill {
            position,
            candidates,
        });
    }
    post(&Event::MaskFilled {
        tokens,
        fills,
        mask: bert::attention_mask(&vec![false; ids.len()]),
    });
    Ok(())
}

pub async fn continue_text(url: &str, prompt: &str, max_new_tokens: usize) -> Result<(), String> {
    let (model, tokenizer) = model_at(url).await?;
    let ids = tokenizer.encode(prompt).map_err(|e| e.to_string())?;
    if ids.is_empty() {
        return Err("give the GPT a prompt to continue".into());
    }
    let room = model.config().block_size.saturating_sub(ids.len());
    let out = engine::sample::generate(
        &model,
        &ids,
        max_new_tokens.min(room),
        &SamplingConfig::greedy(),
        true,
    )
    .map_err(|e| e.to_string())?;
    // The mask the GPT's attention adds, read back as booleans: 0 allowed, −∞ not.
    let total = ids.len() + out.len();
    let additive = attention::causal_mask(total, 0, DType::F32, &Device::Cpu)
        .and_then(|m| Ok(m.to_vec2::<f32>()?))
        .map_err(|e| e.to_string())?;
    let mask = additive
        .iter()
        .map(|row| row.iter().map(|&v| v == 0.0).collect())
        .collect();
    post(&Event::Continued {
        prompt_tokens: chars_of(&tokenizer, &ids)?,
        generated_tokens: chars_of(&tokenizer, &out)?,
        mask,
    });
    Ok(())
}

pub async fn translate(url: &str, number: u32) -> Result<(), String> {
    if number >= numbers::LIMIT {
        return Err(format!(
            "the model knows the numbers 0 to {}; {number} is too big",
            numbers::LIMIT - 1
        ));
    }
    let (model, tokenizer, seed) = t5_at(url).await?;
    let source = numbers::words(number);
    let src = t5::encode(&tokenizer, &source).map_err(|e| e.to_string())?;
    let out = model.greedy(&src, 8).map_err(|e| e.to_string())?;
    let output = t5::decode(&tokenizer, &out).map_err(|e| e.to_string())?;
    let mut source_tokens = chars_of(&tokenizer, &t5_chars(&src))?;
    source_tokens.push("</s>".into());
    let mut target_tokens = vec!["<s>".to_string()];
    target_tokens.extend(chars_of(&tokenizer, &t5_chars(&out))?);
    let (n_src, n_tgt) = (source_tokens.len(), target_tokens.len());
    post(&Event::Translated {
        number,
        held_out: numbers::is_held_out(number, seed, numbers::HELD_OUT),
        source,
        source_tokens,
        target_tokens,
        output,
        encoder_mask: t5::encoder_mask(&vec![false; n_src]),
        decoder_mask: t5::decoder_mask(&vec![false; n_tgt]),
        cross_mask: t5::cross_mask(n_tgt, &vec![false; n_src]),
    });
    Ok(())
}
