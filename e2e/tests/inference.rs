//! End-to-end tests of the inference lessons (E1 decoding, E2 KV cache, E3 quantization) in
//! headless Chromium; screenshots land in target/e2e/.

use std::time::Duration;

use anyhow::Result;
use e2e::{Session, wait_for};

const E1: &str = "/lesson/decoding";
const E2: &str = "/lesson/kv-cache";
const E3: &str = "/lesson/quantization";

const TOP_P: &str = "def top_p_filter(probs, p):\n    order = sorted(range(len(probs)), key=lambda i: (-probs[i], i))\n    kept, total = [], 0.0\n    for i in order:\n        kept.append(i)\n        total += probs[i]\n        if total >= p:\n            break\n    out = [0.0] * len(probs)\n    for i in kept:\n        out[i] = probs[i] / total\n    return out\n";
const TOP_P_NO_RENORM: &str = "def top_p_filter(probs, p):\n    order = sorted(range(len(probs)), key=lambda i: (-probs[i], i))\n    kept, total = [], 0.0\n    for i in order:\n        kept.append(i)\n        total += probs[i]\n        if total >= p:\n            break\n    out = [0.0] * len(probs)\n    for i in kept:\n        out[i] = probs[i]\n    return out\n";

const KV_STEP: &str = "import math\n\ndef kv_step(K, V, q, k, v):\n    K = K + [k]\n    V = V + [v]\n    d = len(q)\n    s = [sum(a * b for a, b in zip(q, kj)) / math.sqrt(d) for kj in K]\n    m = max(s)\n    e = [math.exp(x - m) for x in s]\n    z = sum(e)\n    out = [sum(e[j] / z * V[j][c] for j in range(len(V))) for c in range(len(v))]\n    return [out, K, V]\n";
const KV_STEP_BEFORE_APPEND: &str = "import math\n\ndef kv_step(K, V, q, k, v):\n    d = len(q)\n    keys, vals = (K, V) if K else ([k], [v])\n    s = [sum(a * b for a, b in zip(q, kj)) / math.sqrt(d) for kj in keys]\n    m = max(s)\n    e = [math.exp(x - m) for x in s]\n    z = sum(e)\n    out = [sum(e[j] / z * vals[j][c] for j in range(len(vals))) for c in range(len(v))]\n    return [out, K + [k], V + [v]]\n";

const INT8: &str = "def int8_roundtrip(xs, clip):\n    r = clip if clip is not None else max(abs(x) for x in xs)\n    s = r / 127 if r > 0 else 1.0\n    xhat = [max(-127, min(127, round(x / s))) * s for x in xs]\n    err = max(abs(x - y) for x, y in zip(xs, xhat))\n    return [xhat, err]\n";
const INT8_BY_128: &str = "def int8_roundtrip(xs, clip):\n    r = clip if clip is not None else max(abs(x) for x in xs)\n    s = r / 128 if r > 0 else 1.0\n    xhat = [max(-128, min(127, round(x / s))) * s for x in xs]\n    err = max(abs(x - y) for x, y in zip(xs, xhat))\n    return [xhat, err]\n";
const INT8_NO_CLAMP: &str = "def int8_roundtrip(xs, clip):\n    r = clip if clip is not None else max(abs(x) for x in xs)\n    s = r / 127 if r > 0 else 1.0\n    xhat = [round(x / s) * s for x in xs]\n    err = max(abs(x - y) for x, y in zip(xs, xhat))\n    return [xhat, err]\n";

/// The text of an element, or `None` while it is absent.
fn text(s: &Session, css: &str) -> Option<String> {
    let e = s.browser.find(css)?;
    s.browser.text(&e).ok()
}

/// Clicks a button and waits for the playground to report `steps` generated tokens in its
/// text (the worker answers each request with the whole text).
fn step_to(s: &Session, button: &str, steps: usize) -> Result<String> {
    let b = s.browser.wait(&format!("[data-testid='{button}']"), 5)?;
    s.browser.click(&b)?;
    s.browser.wait_text(
        "[data-testid='playground-steps']",
        &format!("{steps} tokens"),
        10,
    )?;
    // Wait until the text holds the prompt plus `steps` characters (char-level model).
    let prompt_len = "In the beginning God created the heaven and the "
        .chars()
        .count();
    wait_for(Duration::from_secs(30), "the decoded text", || {
        let t = text(s, "[data-testid='playground-text']")?;
        let next = text(s, "[data-testid='playground-next']").unwrap_or_default();
        let body = t.strip_suffix(&next).unwrap_or(&t);
        (body.chars().count() == prompt_len + steps).then(|| t.clone())
    })
}

#[test]
fn e1_playground_shows_the_distribution_and_replays_a_seed() -> Result<()> {
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    s.open(E1)?;
    let state = wait_for(Duration::from_secs(120), "the model", || {
        text(&s, "[data-testid='playground-state']").filter(|t| !t.contains("Loading"))
    })?;
    assert!(state.contains("is loaded"), "{state}");
    wait_for(Duration::from_secs(30), "the bars", || {
        (s.browser
            .find_all("[data-testid='distribution-chart'] rect")
            .len()
            == 24)
            .then_some(())
    })?;
    // Cuts off: every drawn bar is kept.
    assert!(s.browser.find_all("[data-testid='bar-cut']").is_empty());
    let one = step_to(&s, "playground-step", 1)?;
    let two = step_to(&s, "playground-step", 2)?;
    let three = step_to(&s, "playground-step", 3)?;
    assert!(two.starts_with(one.trim_end()) || two.len() > one.len());
    let reset = s.browser.wait("[data-testid='playground-reset']", 5)?;
    s.browser.click(&reset)?;
    s.browser
        .wait_text("[data-testid='playground-steps']", "0 tokens", 10)?;
    step_to(&s, "playground-step", 1)?;
    step_to(&s, "playground-step", 2)?;
    let again = step_to(&s, "playground-step", 3)?;
    assert_eq!(three, again, "the same seed gives the same text");
    // Top-k 3 keeps three bars; a top-p cut keeps at most as many.
    let k = s.browser.wait("[data-testid='playground-top-k']", 5)?;
    s.browser.set_value(&k, "3")?;
    wait_for(Duration::from_secs(20), "three kept bars", || {
        (s.browser.find_all("[data-testid='bar-kept']").len() == 3).then_some(())
    })?;
    let p = s.browser.wait("[data-testid='playground-top-p']", 5)?;
    s.browser.set_value(&p, "0.3")?;
    wait_for(Duration::from_secs(20), "the nucleus", || {
        let n = s.browser.find_all("[data-testid='bar-kept']").len();
        (1..=2).contains(&n).then_some(())
    })?;
    assert!(
        !s.browser.find_all(".cut.top-p").is_empty(),
        "the top-p cut is drawn"
    );
    // Greedy keeps exactly one token.
    s.browser.set_value(&k, "0")?;
    s.browser.set_value(&p, "1")?;
    let t = s
        .browser
        .wait("[data-testid='playground-temperature']", 5)?;
    s.browser.set_value(&t, "0")?;
    wait_for(Duration::from_secs(20), "the greedy argmax", || {
        (s.browser.find_all("[data-testid='bar-kept']").len() == 1).then_some(())
    })?;
    s.browser.set_value(&t, "0.8")?;
    s.browser.set_value(&p, "0.9")?;
    let ahead = s.browser.wait("[data-testid='playground-ahead']", 5)?;
    s.browser.click(&ahead)?;
    s.browser
        .wait_text("[data-testid='playground-steps']", "43 tokens", 10)?;
    let summary = s
        .browser
        .wait_text("[data-testid='playground-summary']", "Next token", 30)?;
    println!("e1 playground: {summary}");
    let widget = s.browser.wait("[data-testid='sampling-playground']", 5)?;
    s.browser.execute(
        "arguments[0].scrollIntoView();",
        vec![s.browser.element_json(&widget)],
    )?;
    std::thread::sleep(Duration::from_millis(500));
    s.screenshot("e1-playground")?;
    Ok(())
}

#[test]
fn e1_top_p_exercise_grades_right_and_wrong_answers() -> Result<()> {
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    s.open(E1)?;
    let t = s.run_code("top-p", TOP_P)?;
    assert!(t.contains("✓ All"), "{t}");
    let t = s.run_code("top-p", TOP_P_NO_RENORM)?;
    assert!(t.contains("✗") && t.contains("renormalised"), "{t}");
    s.screenshot("e1-top-p-feedback")?;
    Ok(())
}

#[test]
fn e2_kv_cache_benchmark_runs_and_the_exercise_grades() -> Result<()> {
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    s.open(E2)?;
    let tokens = s.browser.wait("[data-testid='kv-tokens']", 90)?;
    s.browser.set_value(&tokens, "128")?;
    s.browser.execute(
        "arguments[0].dispatchEvent(new Event('change', {bubbles: true}));",
        vec![s.browser.element_json(&tokens)],
    )?;
    let run = s.browser.wait("[data-testid='kv-run']", 5)?;
    s.browser.click(&run)?;
    let summary = s
        .browser
        .wait_text("[data-testid='kv-summary']", "faster", 120)?;
    println!("e2 kv cache: {summary}");
    assert!(summary.starts_with("128 tokens"), "{summary}");
    // 2 layers × 2 × 64 × 128 tokens × 4 bytes.
    assert!(summary.contains("131\u{202f}072 bytes"), "{summary}");
    let speedup: f64 = summary
        .split(" (")
        .nth(1)
        .and_then(|t| t.split('×').next())
        .and_then(|x| x.parse().ok())
        .unwrap_or(0.0);
    assert!(speedup > 1.5, "the cache is faster: {summary}");
    let chart = s.browser.wait("[data-testid='kv-cache-bench']", 5)?;
    s.browser.execute(
        "arguments[0].scrollIntoView();",
        vec![s.browser.element_json(&chart)],
    )?;
    std::thread::sleep(Duration::from_millis(300));
    s.screenshot("e2-kv-bench")?;
    let t = s.run_code("kv-step", KV_STEP)?;
    assert!(t.contains("✓ All"), "{t}");
    let t = s.run_code("kv-step", KV_STEP_BEFORE_APPEND)?;
    assert!(t.contains("✗") && t.contains("before"), "{t}");
    Ok(())
}

/// The number in a table cell (thousands separated by thin spaces).
fn number(cell: &serde_json::Value) -> f64 {
    let t: String = cell
        .as_str()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    t.parse().unwrap_or(f64::NAN)
}

#[test]
fn e3_quantization_widget_measures_each_format_and_the_exercise_grades() -> Result<()> {
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    s.open(E3)?;
    let run = s.browser.wait("[data-testid='quant-run']", 90)?;
    s.browser.click(&run)?;
    // Progress shows while the worker works.
    s.browser.wait("[data-testid='quant-progress']", 30)?;
    s.browser.wait("[data-testid='memory-table']", 300)?;
    let summary = text(&s, "[data-testid='quant-summary']").unwrap_or_default();
    println!("e3 formats: {summary}");
    let rows = s.browser.execute(
        "return Array.from(document.querySelectorAll(\"[data-testid='quant-table'] tbody tr\")).map(r => [r.dataset.format, r.querySelector(\"[data-testid='file-bytes']\").textContent, r.querySelector(\"[data-testid='perplexity']\").textContent]);",
        vec![],
    )?;
    let rows = rows.as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = rows.iter().map(|r| r[0].as_str().unwrap_or("")).collect();
    assert_eq!(names, ["fp32", "int8-sym", "int8-asym", "int4-g32"]);
    let bytes: Vec<f64> = rows.iter().map(|r| number(&r[1])).collect();
    let ppl: Vec<f64> = rows.iter().map(|r| number(&r[2])).collect();
    // The fp32 file is the shipped model.safetensors, byte for byte the same size.
    assert_eq!(bytes[0], 435_160.0, "{bytes:?}");
    let int8_ratio = bytes[0] / bytes[1];
    assert!(
        (3.3..4.0).contains(&int8_ratio),
        "int8 about 4× smaller: {bytes:?}"
    );
    assert!(bytes[2] > bytes[1], "zero points cost bytes: {bytes:?}");
    assert!(
        (5.0..8.0).contains(&(bytes[0] / bytes[3])),
        "int4: {bytes:?}"
    );
    assert!(ppl.iter().all(|p| p.is_finite()), "{ppl:?}");
    assert!((4.0..10.0).contains(&ppl[0]), "a trained model: {ppl:?}");
    assert!(
        (ppl[1] / ppl[0] - 1.0).abs() < 0.01,
        "int8 keeps perplexity: {ppl:?}"
    );
    assert!((ppl[2] / ppl[0] - 1.0).abs() < 0.01, "{ppl:?}");
    assert!(
        ppl[3] > ppl[1].min(ppl[2]) && ppl[3] < 1.3 * ppl[0],
        "int4 costs a little: {ppl:?}"
    );
    let samples = s.browser.find_all("[data-testid='quant-samples'] pre");
    assert_eq!(samples.len(), 4);
    for e in &samples {
        let t = s.browser.text(e)?;
        assert!(
            t.starts_with("And God said") && t.chars().count() > 40,
            "{t}"
        );
    }
    // The pruning curve: a point per sparsity, rising to 90%.
    let prune: Vec<f64> = s
        .browser
        .find_all("[data-testid='prune-perplexity']")
        .iter()
        .map(|e| s.browser.text(e).map(|t| number(&serde_json::json!(t))))
        .collect::<Result<_>>()?;
    println!("e3 pruning: {prune:?}");
    assert_eq!(prune.len(), 6);
    assert!((prune[0] - ppl[0]).abs() < 1e-3, "0% is the fp32 model");
    assert!(
        prune[5] > 1.5 * prune[0] && prune[2] >= prune[0],
        "{prune:?}"
    );
    assert_eq!(
        s.browser
            .find_all("[data-testid='prune-chart'] circle.dot.val")
            .len(),
        6
    );
    let memory = text(&s, "[data-testid='memory-table']").unwrap_or_default();
    assert!(
        memory.contains("28.0 GB") && memory.contains("35.0 GB"),
        "{memory}"
    );
    let widget = s.browser.wait("[data-testid='quant-compare']", 5)?;
    s.browser.execute(
        "arguments[0].scrollIntoView();",
        vec![s.browser.element_json(&widget)],
    )?;
    std::thread::sleep(Duration::from_millis(300));
    s.screenshot("e3-quantization")?;
    let t = s.run_code("int8-roundtrip", INT8)?;
    assert!(t.contains("✓ All"), "{t}");
    let t = s.run_code("int8-roundtrip", INT8_BY_128)?;
    assert!(t.contains("✗") && t.contains("not / 128"), "{t}");
    let t = s.run_code("int8-roundtrip", INT8_NO_CLAMP)?;
    assert!(t.contains("✗") && t.contains("clamp the codes"), "{t}");
    s.screenshot("e3-exercise-feedback")?;
    Ok(())
}
