//! End-to-end test of lesson C4 (Encoder, decoder, encoder-decoder) in headless Chromium:
//! the architectures widget runs the shipped BERT, GPT and T5 and draws their masks, and the
//! architecture-masks exercise gets a right and a wrong answer. Screenshots in target/e2e/.

use std::time::Duration;

use anyhow::Result;
use e2e::{Session, wait_for};
use serde_json::Value;

const C4: &str = "/lesson/architectures";

const BUILD_MASK: &str = "def build_mask(kind, query_len, key_padding):\n    mask = []\n    for i in range(query_len):\n        row = []\n        for j in range(len(key_padding)):\n            ok = not key_padding[j]\n            if kind == 'decoder':\n                ok = ok and j <= i\n            row.append(ok)\n        mask.append(row)\n    return mask\n";
/// Everything causal, the encoder included.
const BUILD_MASK_CAUSAL: &str = "def build_mask(kind, query_len, key_padding):\n    return [[j <= i and not key_padding[j] for j in range(len(key_padding))] for i in range(query_len)]\n";

/// `[rows, cols, allowed]` of a mask grid.
fn grid(s: &Session, testid: &str) -> Result<(usize, usize, usize)> {
    let v = s.browser.execute(
        "const g = document.querySelector(arguments[0]); \
         return g ? [+g.dataset.rows, +g.dataset.cols, +g.dataset.allowed] : null;",
        vec![Value::from(format!("[data-testid='{testid}']"))],
    )?;
    let n = |i: usize| v.get(i).and_then(Value::as_u64).unwrap_or(0) as usize;
    Ok((n(0), n(1), n(2)))
}

#[test]
fn c4_bert_fills_the_gpt_continues_t5_translates_with_their_masks() -> Result<()> {
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    s.open(C4)?;
    s.browser.wait(
        "[data-testid='arch-bert-mask'], [data-testid='arch-bert-error']",
        120,
    )?;
    s.browser.wait(
        "[data-testid='arch-t5-output'], [data-testid='arch-t5-error']",
        120,
    )?;
    s.browser.wait(
        "[data-testid='arch-gpt-mask'], [data-testid='arch-gpt-error']",
        120,
    )?;

    // BERT: candidates are characters of the vocabulary with probabilities that sum to ≤ 1.
    let candidates = s.browser.execute(
        "return [...document.querySelectorAll(\"[data-testid='arch-bert-candidates'] li\")]\
         .map(li => [li.dataset.char, +li.dataset.prob]);",
        vec![],
    )?;
    let candidates = candidates.as_array().cloned().unwrap_or_default();
    assert_eq!(candidates.len(), 5, "{candidates:?}");
    let mut total = 0.0;
    for c in &candidates {
        let ch = c[0].as_str().unwrap_or("");
        let p = c[1].as_f64().unwrap_or(-1.0);
        assert_eq!(
            ch.chars().count(),
            1,
            "a candidate is one character: {ch:?}"
        );
        assert_ne!(ch, "_", "[MASK] is never proposed");
        assert!(p > 0.0 && p <= 1.0, "{p}");
        total += p;
    }
    assert!(total <= 1.0 + 1e-3, "{total}");
    // The default text "And God _aid, Let there be light" is 32 characters: a full 32×32 mask.
    assert_eq!(grid(&s, "arch-bert-mask")?, (32, 32, 32 * 32));

    // GPT: causal over prompt + continuation, t(t+1)/2 allowed cells.
    let (rows, cols, allowed) = grid(&s, "arch-gpt-mask")?;
    assert_eq!(rows, cols);
    assert!(rows > "And God said".len(), "it generated something");
    assert_eq!(allowed, rows * (rows + 1) / 2);

    // T5 on the default number: source "four thousand two hundred seven" + EOS (32 keys).
    let (enc_r, enc_c, enc_a) = grid(&s, "arch-t5-encoder-mask")?;
    assert_eq!((enc_r, enc_c, enc_a), (32, 32, 32 * 32));
    let (dec_r, _, dec_a) = grid(&s, "arch-t5-decoder-mask")?;
    assert_eq!(dec_a, dec_r * (dec_r + 1) / 2);
    let (x_r, x_c, x_a) = grid(&s, "arch-t5-cross-mask")?;
    assert_eq!(
        (x_r, x_c, x_a),
        (dec_r, 32, dec_r * 32),
        "cross-attention is a full rectangle"
    );

    // A held-out number, translated right.
    let input = s.browser.wait("[data-testid='arch-t5-number']", 5)?;
    s.browser.set_value(&input, &HELD_OUT_RIGHT.to_string())?;
    let run = s.browser.wait("[data-testid='arch-t5-run']", 5)?;
    s.browser.click(&run)?;
    let out = wait_for(Duration::from_secs(60), "the translation", || {
        let v = s
            .browser
            .execute(
                "const o = document.querySelector(\"[data-testid='arch-t5-output']\"); \
                 return o ? [o.textContent, o.dataset.right, o.dataset.heldOut] : null;",
                vec![],
            )
            .ok()?;
        let text = v.get(0)?.as_str()?.to_string();
        text.contains(&HELD_OUT_RIGHT.to_string()).then_some(v)
    })?;
    assert_eq!(out[2], "true", "{out:?} is held out");
    assert_eq!(out[1], "true", "{out:?}");
    let widget = s.browser.wait("[data-testid='architectures']", 5)?;
    s.browser.execute(
        "arguments[0].scrollIntoView();",
        vec![s.browser.element_json(&widget)],
    )?;
    s.screenshot("c4-architectures")?;
    Ok(())
}

/// A held-out number the shipped T5 writes correctly (from `cargo xtask assets`' output).
const HELD_OUT_RIGHT: u32 = 3304;

#[test]
fn c4_mask_exercise_right_and_wrong() -> Result<()> {
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    s.open(C4)?;
    let t = s.run_code("architecture-masks", BUILD_MASK)?;
    assert!(t.contains("✓ All"), "{t}");
    let t = s.run_code("architecture-masks", BUILD_MASK_CAUSAL)?;
    assert!(t.contains("✗") && t.contains("bidirectional"), "{t}");
    s.screenshot("c4-exercise-feedback")?;
    Ok(())
}
