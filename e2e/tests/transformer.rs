//! End-to-end tests of the transformer lessons (C1–C4) in headless Chromium: each widget runs
//! on the real shipped model, and each exercise gets a right and a wrong answer.
//! Screenshots land in target/e2e/.

use std::time::Duration;

use anyhow::Result;
use e2e::{Session, wait_for};
use serde_json::Value;

const C1: &str = "/lesson/attention";
const C2: &str = "/lesson/positions";

const ROPE: &str = "import math\n\ndef rope(x, pos):\n    d = len(x)\n    out = list(x)\n    for i in range(d // 2):\n        a = pos * 10000 ** (-2 * i / d)\n        c, s = math.cos(a), math.sin(a)\n        out[2 * i] = x[2 * i] * c - x[2 * i + 1] * s\n        out[2 * i + 1] = x[2 * i] * s + x[2 * i + 1] * c\n    return out\n";
/// GPT-NeoX's layout: pairs (i, i + d/2) instead of neighbours.
const ROPE_HALF: &str = "import math\n\ndef rope(x, pos):\n    d = len(x)\n    h = d // 2\n    out = list(x)\n    for i in range(h):\n        a = pos * 10000 ** (-2 * i / d)\n        c, s = math.cos(a), math.sin(a)\n        out[i] = x[i] * c - x[i + h] * s\n        out[i + h] = x[i] * s + x[i + h] * c\n    return out\n";

const MASKED_ATTENTION: &str = "import math\n\ndef masked_attention(q, k, v, mask):\n    d = len(q[0])\n    out = []\n    for i in range(len(q)):\n        js = [j for j in range(len(k)) if mask[i][j]]\n        s = [sum(a * b for a, b in zip(q[i], k[j])) / math.sqrt(d) for j in js]\n        m = max(s)\n        e = [math.exp(x - m) for x in s]\n        z = sum(e)\n        out.append([sum(e[n] / z * v[j][c] for n, j in enumerate(js)) for c in range(len(v[0]))])\n    return out\n";
/// The D1 habit: a causal mask built in, the given mask ignored.
const MASKED_ATTENTION_CAUSAL: &str = "import math\n\ndef masked_attention(q, k, v, mask):\n    d = len(q[0])\n    out = []\n    for i in range(len(q)):\n        js = [j for j in range(len(k)) if j <= i]\n        s = [sum(a * b for a, b in zip(q[i], k[j])) / math.sqrt(d) for j in js]\n        m = max(s)\n        e = [math.exp(x - m) for x in s]\n        z = sum(e)\n        out.append([sum(e[n] / z * v[j][c] for n, j in enumerate(js)) for c in range(len(v[0]))])\n    return out\n";

/// The heat map's cells as `(query, key, weight)`, read from the page.
fn cells(s: &Session) -> Result<Vec<(usize, usize, f64)>> {
    let v = s.browser.execute(
        "return [...document.querySelectorAll(\"[data-testid='attn-grid'] rect.attn-cell\")]\
         .map(r => [+r.dataset.q, +r.dataset.k, +r.dataset.w]);",
        vec![],
    )?;
    let rows = v.as_array().cloned().unwrap_or_default();
    Ok(rows
        .iter()
        .map(|r| {
            let n = |i: usize| r.get(i).and_then(Value::as_f64).unwrap_or(f64::NAN);
            (n(0) as usize, n(1) as usize, n(2))
        })
        .collect())
}

fn select(s: &Session, testid: &str, value: &str) -> Result<()> {
    s.browser.execute(
        "const el = document.querySelector(arguments[0]); el.value = arguments[1]; \
         el.dispatchEvent(new Event('change', {bubbles: true}));",
        vec![
            Value::from(format!("[data-testid='{testid}']")),
            Value::from(value),
        ],
    )?;
    Ok(())
}

#[test]
fn c1_heatmap_shows_the_shipped_model_per_layer_and_head() -> Result<()> {
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    s.open(C1)?;
    s.browser
        .wait("[data-testid='attn-grid'] rect.attn-cell", 120)?;
    let text = "And God said, Let there be light: and there was light.";
    let t = text.chars().count();
    let head1 = cells(&s)?;
    assert_eq!(head1.len(), t * t, "one cell per (query, key)");
    // Every row is a distribution over the keys it may see; the future gets exactly 0.
    for i in 0..t {
        let row: Vec<f64> = head1.iter().filter(|c| c.0 == i).map(|c| c.2).collect();
        let sum: f64 = row.iter().sum();
        assert!((sum - 1.0).abs() < 0.01, "row {i} sums to {sum}");
        assert!(row[i + 1..].iter().all(|&w| w == 0.0), "row {i} sees ahead");
    }
    assert_eq!(head1[0].2, 1.0, "the first query sees only itself");
    // A trained head is far from the uniform average 1/(i+1) somewhere.
    let peaked = head1
        .iter()
        .filter(|c| c.0 >= 8 && c.1 <= c.0)
        .any(|c| c.2 > 0.5);
    assert!(peaked, "no weight above 0.5: the maps look untrained");

    // Hover reads the weight and the token pair.
    s.browser.execute(
        "document.querySelector(\"[data-testid='attn-grid'] rect[data-q='12'][data-k='11']\")\
         .dispatchEvent(new MouseEvent('mouseover', {bubbles: true}));",
        vec![],
    )?;
    let w = head1.iter().find(|c| (c.0, c.1) == (12, 11)).unwrap().2;
    let readout = s
        .browser
        .wait_text("[data-testid='attn-readout']", "query 12 ','", 10)?;
    assert!(readout.contains("key 11 'd'"), "{readout}");
    assert!(readout.contains(&format!("{w:.3}")), "{readout} vs {w}");

    // Another head and another layer draw other maps.
    select(&s, "attn-head", "2")?;
    let head3 = wait_for(Duration::from_secs(10), "head 3's map", || {
        let c = cells(&s).ok()?;
        (c != head1).then_some(c)
    })?;
    assert_eq!(head3.len(), t * t);
    select(&s, "attn-layer", "1")?;
    wait_for(Duration::from_secs(10), "layer 2's map", || {
        let c = cells(&s).ok()?;
        (c != head3).then_some(())
    })?;
    let widget = s.browser.wait("[data-testid='attention-heatmap']", 5)?;
    s.browser.execute(
        "arguments[0].scrollIntoView();",
        vec![s.browser.element_json(&widget)],
    )?;
    s.screenshot("c1-heatmap")?;

    // A character the model never saw is refused with a reason, not a blank map.
    let input = s.browser.wait("[data-testid='attn-text']", 5)?;
    s.browser.set_value(&input, "In 1611")?;
    let show = s.browser.wait("[data-testid='attn-show']", 5)?;
    s.browser.click(&show)?;
    s.browser
        .wait_text("[data-testid='attn-error']", "training text", 30)?;
    Ok(())
}

#[test]
fn c1_exercise_grades_right_and_wrong_masks() -> Result<()> {
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    s.open(C1)?;
    let t = s.run_code("masked-attention", MASKED_ATTENTION)?;
    assert!(t.contains("✓ All"), "{t}");
    let t = s.run_code("masked-attention", MASKED_ATTENTION_CAUSAL)?;
    assert!(t.contains("✗") && t.contains("causal mask"), "{t}");
    s.screenshot("c1-exercise-feedback")?;
    Ok(())
}

#[test]
fn c2_heads_side_by_side_and_the_position_explorer() -> Result<()> {
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    s.open(C2)?;
    s.browser
        .wait("[data-testid='attn-heads'] figure.attn-head", 120)?;
    let heads = s
        .browser
        .find_all("[data-testid='attn-heads'] figure.attn-head");
    assert_eq!(heads.len(), 4, "the shipped model has 4 heads per layer");
    let widget = s.browser.wait("[data-testid='attn-heads']", 5)?;
    s.browser.execute(
        "arguments[0].scrollIntoView();",
        vec![s.browser.element_json(&widget)],
    )?;
    s.screenshot("c2-heads")?;

    // Sinusoidal similarity: the diagonal is d/2 (cos 0 summed over the pairs) and the
    // value depends only on m - n.
    let sim = |s: &Session| -> Result<Vec<f64>> {
        let v = s.browser.execute(
            "return [...document.querySelectorAll(\"[data-testid='pos-similarity'] rect\")].map(r => +r.dataset.v);",
            vec![],
        )?;
        Ok(v.as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(Value::as_f64)
            .collect())
    };
    let n = 48;
    let sinus = sim(&s)?;
    assert_eq!(sinus.len(), n * n);
    assert!(
        (sinus[0] - 16.0).abs() < 1e-3,
        "PE(0)·PE(0) = d/2 = 16, got {}",
        sinus[0]
    );
    assert!(
        (sinus[3 * n + 1] - sinus[20 * n + 18]).abs() < 1e-3,
        "depends on m - n"
    );
    let rope = s.browser.wait("[data-testid='pos-rope']", 5)?;
    s.browser.click(&rope)?;
    let rotated = wait_for(Duration::from_secs(10), "the rope panel", || {
        let v = sim(&s).ok()?;
        (v != sinus && v.len() == n * n).then_some(v)
    })?;
    assert!((rotated[5 * n + 2] - rotated[30 * n + 27]).abs() < 1e-3);
    let explorer = s.browser.wait("[data-testid='position-explorer']", 5)?;
    s.browser.execute(
        "arguments[0].scrollIntoView();",
        vec![s.browser.element_json(&explorer)],
    )?;
    s.screenshot("c2-position-explorer")?;
    Ok(())
}

#[test]
fn c2_exercise_grades_right_and_wrong_rope() -> Result<()> {
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    s.open(C2)?;
    let t = s.run_code("rope", ROPE)?;
    assert!(t.contains("✓ All"), "{t}");
    let t = s.run_code("rope", ROPE_HALF)?;
    assert!(t.contains("✗") && t.contains("NeoX"), "{t}");
    Ok(())
}

const C3: &str = "/lesson/transformer-block";

const LAYERNORM: &str = "import math\n\ndef layernorm(x, gamma, beta, eps):\n    out = []\n    for row in x:\n        d = len(row)\n        mu = sum(row) / d\n        var = sum((v - mu) ** 2 for v in row) / d\n        s = math.sqrt(var + eps)\n        out.append([(v - mu) / s * g + b for v, g, b in zip(row, gamma, beta)])\n    return out\n";
/// The statistics habit: the sample variance, divided by d - 1.
const LAYERNORM_UNBIASED: &str = "import math, statistics\n\ndef layernorm(x, gamma, beta, eps):\n    out = []\n    for row in x:\n        mu = statistics.mean(row)\n        var = statistics.variance(row)\n        s = math.sqrt(var + eps)\n        out.append([(v - mu) / s * g + b for v, g, b in zip(row, gamma, beta)])\n    return out\n";

/// A list of numbers the block-compare widget keeps in a data attribute of one side.
fn side_data(s: &Session, side: &str, attr: &str) -> Result<Vec<f64>> {
    let v = s.browser.execute(
        "const el = document.querySelector(arguments[0]); \
         return el ? JSON.parse(el.dataset[arguments[1]] || '[]') : [];",
        vec![
            Value::from(format!("[data-testid='{side}-stats']")),
            Value::from(attr),
        ],
    )?;
    Ok(v.as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect())
}

/// The gradient bars as `(variant, layer, norm)`.
fn grad_bars(s: &Session) -> Result<Vec<(String, usize, f64)>> {
    let v = s.browser.execute(
        "return [...document.querySelectorAll(\"[data-testid='grad-bar']\")]\
         .map(r => [r.dataset.variant, +r.dataset.layer, +r.dataset.norm]);",
        vec![],
    )?;
    Ok(v.as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap_or_default().to_string(),
                r[1].as_u64().unwrap_or(0) as usize,
                r[2].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect())
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

#[test]
fn c3_two_variants_train_side_by_side_with_per_layer_gradients() -> Result<()> {
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    s.open(C3)?;
    // The lesson's default: GPT-2's block (A) against the same block without residuals (B).
    let start = s.browser.wait("[data-testid='compare-start']", 60)?;
    assert_eq!(
        s.browser.execute(
            "return document.querySelector(\"[data-testid='b-residual']\").value;",
            vec![]
        )?,
        Value::from("false")
    );
    let t0 = std::time::Instant::now();
    s.browser.click(&start)?;
    s.browser
        .wait_text("[data-testid='compare-phase']", "finished", 300)?;
    eprintln!("c3: both variants trained in {:?}", t0.elapsed());
    let steps = s
        .browser
        .text(&s.browser.wait("[data-testid='compare-steps']", 5)?)?;
    assert_eq!(steps, "300", "150 steps of each variant");

    for side in ["a", "b"] {
        let losses = side_data(&s, side, "losses")?;
        let vals = side_data(&s, side, "vals")?;
        assert_eq!(losses.len(), 150, "{side}: one loss per step");
        assert_eq!(vals.len(), 7, "{side}: validation at 0, 25, …, 150");
        assert!(
            losses
                .iter()
                .chain(&vals)
                .all(|l| l.is_finite() && *l > 0.0)
        );
        // Untrained: about ln(vocab) ≈ 4.1 nats; both fall from there.
        assert!((vals[0] - 4.1).abs() < 0.3, "{side}: first val {}", vals[0]);
        assert!(
            mean(&losses[140..]) < mean(&losses[..10]) - 0.8,
            "{side}: training loss did not fall: {losses:?}"
        );
        assert!(vals[6] < vals[0] - 0.8, "{side}: val {vals:?}");
        eprintln!("c3 {side}: val losses {vals:?}");
    }
    // The residual model learns more than the unigram distribution (≈ 3 nats); the one
    // without residuals stalls near it.
    let (a_val, b_val) = (
        side_data(&s, "a", "vals")?[6],
        side_data(&s, "b", "vals")?[6],
    );
    assert!(a_val < b_val - 0.2, "A {a_val} vs B {b_val}");

    let bars = grad_bars(&s)?;
    assert_eq!(bars.len(), 8, "4 layers × 2 variants");
    assert!(
        bars.iter().all(|b| b.2.is_finite() && b.2 > 0.0),
        "{bars:?}"
    );
    let norm = |v: &str, l: usize| bars.iter().find(|b| b.0 == v && b.1 == l).unwrap().2;
    eprintln!(
        "c3 grad norms A {:?} B {:?}",
        (0..4).map(|l| norm("a", l)).collect::<Vec<_>>(),
        (0..4).map(|l| norm("b", l)).collect::<Vec<_>>()
    );
    // Without residuals the first layer gets orders of magnitude less gradient than with.
    assert!(norm("a", 0) > 100.0 * norm("b", 0), "{bars:?}");
    assert!(norm("b", 0) < 1e-2 * norm("b", 3), "{bars:?}");

    let widget = s.browser.wait("[data-testid='block-compare']", 5)?;
    s.browser.execute(
        "arguments[0].scrollIntoView();",
        vec![s.browser.element_json(&widget)],
    )?;
    s.screenshot("c3-block-compare")?;
    Ok(())
}

#[test]
fn c3_stop_ends_a_run_and_other_variants_can_be_picked() -> Result<()> {
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    s.open(C3)?;
    s.browser.wait("[data-testid='compare-start']", 60)?;
    select(&s, "b-placement", "post")?;
    select(&s, "b-residual", "true")?;
    select(&s, "a-norm", "rmsnorm")?;
    select(&s, "a-ffn", "swiglu")?;
    let start = s.browser.wait("[data-testid='compare-start']", 5)?;
    s.browser.click(&start)?;
    let legend = s
        .browser
        .text(&s.browser.wait("[data-testid='a-stats']", 5)?)?;
    assert!(legend.contains("RMSNorm · SwiGLU · pre-norm"), "{legend}");
    let legend = s
        .browser
        .text(&s.browser.wait("[data-testid='b-stats']", 5)?)?;
    assert!(legend.contains("GELU · post-norm · residuals"), "{legend}");
    let count = |s: &Session| -> usize {
        s.browser
            .find("[data-testid='compare-steps']")
            .and_then(|e| s.browser.text(&e).ok())
            .and_then(|t| t.parse().ok())
            .unwrap_or(0)
    };
    wait_for(Duration::from_secs(120), "a few steps", || {
        (count(&s) >= 10).then_some(())
    })?;
    let stop = s.browser.wait("[data-testid='compare-stop']", 5)?;
    s.browser.click(&stop)?;
    s.browser
        .wait_text("[data-testid='compare-phase']", "finished", 10)?;
    std::thread::sleep(Duration::from_millis(1500));
    let stopped = count(&s);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(&s), stopped, "steps kept coming after Stop");
    assert!(stopped < 300);
    // Both variants ran: the SwiGLU/RMSNorm model and the post-norm one.
    assert!(!side_data(&s, "a", "losses")?.is_empty());
    assert!(!side_data(&s, "b", "losses")?.is_empty());
    Ok(())
}

#[test]
fn c3_exercise_grades_right_and_wrong_layernorm() -> Result<()> {
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    s.open(C3)?;
    s.browser.wait("[data-testid='compare-start']", 60)?;
    s.screenshot("c3-lesson-top")?;
    // The tables of measured gradients and losses (Markdown tables with maths in cells).
    s.browser.execute(
        "[...document.querySelectorAll('table')].pop().scrollIntoView();",
        vec![],
    )?;
    s.screenshot("c3-variants-table")?;
    let t = s.run_code("layernorm", LAYERNORM)?;
    assert!(t.contains("✓ All"), "{t}");
    let t = s.run_code("layernorm", LAYERNORM_UNBIASED)?;
    assert!(t.contains("✗") && t.contains("d - 1"), "{t}");
    s.screenshot("c3-exercise-feedback")?;
    Ok(())
}
