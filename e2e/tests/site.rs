//! End-to-end tests of the built site in headless Chromium. Each test is one user action;
//! screenshots land in target/e2e/.

use std::time::Duration;

use anyhow::Result;
use e2e::{Session, exercise, wait_for};

const D1: &str = "/lesson/bigram-to-gpt";
const B2: &str = "/lesson/tokenization";

const BIGRAM_NLL: &str = "import math\n\ndef bigram_nll(counts, ids):\n    total = 0.0\n    for a, b in zip(ids, ids[1:]):\n        total -= math.log(counts[a][b] / sum(counts[a]))\n    return total / (len(ids) - 1)\n";
const BIGRAM_NLL_SUM: &str = "import math\n\ndef bigram_nll(counts, ids):\n    total = 0.0\n    for a, b in zip(ids, ids[1:]):\n        total -= math.log(counts[a][b] / sum(counts[a]))\n    return total\n";
const ATTENTION: &str = "import math\n\ndef attention(q, k, v):\n    d = len(q[0])\n    out = []\n    for i in range(len(q)):\n        s = [sum(a * b for a, b in zip(q[i], k[j])) / math.sqrt(d) for j in range(i + 1)]\n        m = max(s)\n        e = [math.exp(x - m) for x in s]\n        z = sum(e)\n        out.append([sum(e[j] / z * v[j][c] for j in range(i + 1)) for c in range(len(v[0]))])\n    return out\n";
const ATTENTION_NO_MASK: &str = "import math\n\ndef attention(q, k, v):\n    d = len(q[0])\n    out = []\n    for i in range(len(q)):\n        s = [sum(a * b for a, b in zip(q[i], k[j])) / math.sqrt(d) for j in range(len(k))]\n        m = max(s)\n        e = [math.exp(x - m) for x in s]\n        z = sum(e)\n        out.append([sum(e[j] / z * v[j][c] for j in range(len(k))) for c in range(len(v[0]))])\n    return out\n";
const MERGE_STEP: &str = "def merge_step(ids, new_id):\n    counts = {}\n    for p in zip(ids, ids[1:]):\n        counts[p] = counts.get(p, 0) + 1\n    best = max(counts, key=counts.get)\n    out, i = [], 0\n    while i < len(ids):\n        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == best:\n            out.append(new_id)\n            i += 2\n        else:\n            out.append(ids[i])\n            i += 1\n    return best, out\n";
const MERGE_STEP_FIRST_ONLY: &str = "def merge_step(ids, new_id):\n    counts = {}\n    for p in zip(ids, ids[1:]):\n        counts[p] = counts.get(p, 0) + 1\n    best = max(counts, key=counts.get)\n    for i in range(len(ids) - 1):\n        if (ids[i], ids[i + 1]) == best:\n            return best, ids[:i] + [new_id] + ids[i + 2:]\n    return best, ids\n";
const ENCODE: &str = "def encode(text, merges):\n    ids = list(text.encode('utf-8'))\n    for (a, b), new_id in merges:\n        out, i = [], 0\n        while i < len(ids):\n            if i + 1 < len(ids) and ids[i] == a and ids[i + 1] == b:\n                out.append(new_id)\n                i += 2\n            else:\n                out.append(ids[i])\n                i += 1\n        ids = out\n    return ids\n";
const ENCODE_ORD: &str = "def encode(text, merges):\n    ids = [ord(c) for c in text]\n    for (a, b), new_id in merges:\n        out, i = [], 0\n        while i < len(ids):\n            if i + 1 < len(ids) and ids[i] == a and ids[i + 1] == b:\n                out.append(new_id)\n                i += 2\n            else:\n                out.append(ids[i])\n                i += 1\n        ids = out\n    return ids\n";
const INFINITE: &str = "def bigram_nll(counts, ids):\n    while True:\n        pass\n";

#[test]
fn course_map_lists_every_syllabus_lesson() -> Result<()> {
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    s.open("/")?;
    s.browser.wait("[data-testid='course-map']", 90)?;
    let cards = s.browser.find_all(".lesson-card");
    assert_eq!(cards.len(), 25, "every syllabus lesson is on the map");
    let written = e2e::written_lessons();
    let live = s.browser.find_all(".lesson-card.live a");
    assert_eq!(live.len(), written, "every lessons/*.md is live on the map");
    let pending = s.browser.find_all(".lesson-card.pending .badge");
    assert_eq!(pending.len(), 25 - written);
    assert!(s.browser.text(&pending[0])?.contains("in preparation"));
    s.screenshot("course-map-light")?;
    let toggle = s.browser.wait("[data-testid='theme-toggle']", 5)?;
    s.browser.click(&toggle)?;
    let theme = s
        .browser
        .execute("return document.documentElement.dataset.theme;", vec![])?;
    assert_eq!(theme, "dark");
    s.screenshot("course-map-dark")?;
    Ok(())
}

#[test]
fn lesson_links_survive_a_reload_and_keys_navigate() -> Result<()> {
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    s.open(&format!("{D1}#the-transformer-block"))?;
    s.browser.wait("[data-testid='lesson-d1']", 90)?;
    s.browser.refresh()?;
    s.browser.wait("[data-testid='lesson-d1']", 90)?;
    let math = s.browser.find_all(".prose math");
    assert!(math.len() > 10, "maths is rendered as MathML");
    s.screenshot("d1-top")?;
    s.open(B2)?;
    s.browser.wait("[data-testid='lesson-b2']", 90)?;
    s.screenshot("b2-top")?;
    // "m" goes to the course map.
    let body = s.browser.wait("body", 5)?;
    s.browser.send_keys(&body, "m")?;
    s.browser.wait("[data-testid='course-map']", 10)?;
    s.open("/lesson/no-such-lesson")?;
    s.browser.wait_text("main", "Page not found", 60)?;
    Ok(())
}

#[test]
fn training_widget_loss_drops_while_the_page_responds() -> Result<()> {
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    s.open(D1)?;
    let start = s.browser.wait("[data-testid='train-start']", 90)?;
    s.browser.click(&start)?;
    let step = |s: &Session| -> Option<usize> {
        let e = s.browser.find("[data-testid='train-step']")?;
        s.browser.text(&e).ok()?.parse().ok()
    };
    let loss = |s: &Session| -> Option<f64> {
        let e = s.browser.find("[data-testid='train-loss']")?;
        s.browser.text(&e).ok()?.parse().ok()
    };
    wait_for(Duration::from_secs(120), "the first step", || {
        step(&s).filter(|n| *n >= 1)
    })?;
    let first = loss(&s).expect("a loss after step 1");
    // The page answers clicks during training: Pause is handled and counted.
    let pause = s.browser.wait("[data-testid='train-pause']", 5)?;
    s.browser.click(&pause)?;
    s.browser
        .wait_text("[data-testid='train-phase']", "paused", 60)?;
    let clicks = s.browser.wait("[data-testid='clicks']", 5)?;
    assert_eq!(
        s.browser.execute(
            "return arguments[0].textContent;",
            vec![s.browser.element_json(&clicks)]
        )?,
        "1"
    );
    s.browser.click(&pause)?;
    s.browser
        .wait_text("[data-testid='train-phase']", "training", 60)?;
    wait_for(Duration::from_secs(300), "the loss to drop by 0.5", || {
        loss(&s).filter(|l| *l < first - 0.5)
    })?;
    let points = s.browser.find_all("[data-testid='loss-chart'] polyline");
    assert!(!points.is_empty(), "the chart draws the curve");
    let tps = s.browser.wait("[data-testid='tokens-per-sec']", 5)?;
    println!(
        "training: first loss {first}, now {:?}, tokens/s {}",
        loss(&s),
        s.browser.text(&tps)?
    );
    let chart = s.browser.wait("[data-testid='train-gpt']", 5)?;
    s.browser.execute(
        "arguments[0].scrollIntoView();",
        vec![s.browser.element_json(&chart)],
    )?;
    s.screenshot("d1-training")?;
    Ok(())
}

#[test]
fn d1_exercises_grade_right_and_wrong_answers() -> Result<()> {
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    s.open(D1)?;
    let t = s.run_code("bigram-nll", BIGRAM_NLL)?;
    assert!(t.contains("✓ All"), "{t}");
    let t = s.run_code("bigram-nll", BIGRAM_NLL_SUM)?;
    assert!(
        t.contains("✗") && t.contains("Hint") && t.contains("expected"),
        "{t}"
    );
    s.screenshot("d1-bigram-feedback")?;
    let t = s.run_code("attention-head", ATTENTION)?;
    assert!(t.contains("✓ All"), "{t}");
    let t = s.run_code("attention-head", ATTENTION_NO_MASK)?;
    assert!(t.contains("✗") && t.contains("-inf"), "{t}");
    // Numeric answer through the same grader.
    let ex = exercise("uniform-loss");
    let input = s
        .browser
        .wait(&format!("{ex} [data-testid='numeric-answer']"), 5)?;
    let check = s.browser.wait(&format!("{ex} [data-testid='check']"), 5)?;
    s.browser.set_value(&input, "1.8129")?;
    s.browser.click(&check)?;
    s.browser
        .wait_text(&format!("{ex} [data-testid='feedback']"), "natural", 10)?;
    s.browser.set_value(&input, "4.174")?;
    s.browser.click(&check)?;
    s.browser
        .wait_text(&format!("{ex} [data-testid='feedback']"), "Correct", 10)?;
    // Passes are saved and shown on the course map.
    s.open("/")?;
    s.browser
        .wait_text("[data-testid='lesson-card-d1']", "3/3 exercises", 60)?;
    Ok(())
}

#[test]
fn b2_exercises_grade_right_and_wrong_answers() -> Result<()> {
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    s.open(B2)?;
    let t = s.run_code("bpe-merge-step", MERGE_STEP)?;
    assert!(t.contains("✓ All"), "{t}");
    let t = s.run_code("bpe-merge-step", MERGE_STEP_FIRST_ONLY)?;
    assert!(t.contains("✗") && t.contains("every"), "{t}");
    let t = s.run_code("bpe-encode", ENCODE)?;
    assert!(t.contains("✓ All"), "{t}");
    let t = s.run_code("bpe-encode", ENCODE_ORD)?;
    assert!(t.contains("✗") && t.contains("utf-8"), "{t}");
    s.screenshot("b2-encode-feedback")?;
    let ex = exercise("byte-level");
    let check = s.browser.wait(&format!("{ex} [data-testid='check']"), 5)?;
    let wrong = s
        .browser
        .wait(&format!("{ex} [data-testid='choice-3']"), 5)?;
    s.browser.click(&wrong)?;
    s.browser.click(&check)?;
    s.browser.wait_text(
        &format!("{ex} [data-testid='feedback']"),
        "1 to 4 bytes",
        10,
    )?;
    let right = s
        .browser
        .wait(&format!("{ex} [data-testid='choice-1']"), 5)?;
    s.browser.click(&right)?;
    s.browser.click(&check)?;
    s.browser
        .wait_text(&format!("{ex} [data-testid='feedback']"), "Correct", 10)?;
    Ok(())
}

#[test]
fn an_infinite_loop_hits_the_time_limit_and_python_recovers() -> Result<()> {
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    s.open(D1)?;
    let t = s.run_code("bigram-nll", INFINITE)?;
    assert!(t.contains("Time limit"), "{t}");
    s.screenshot("d1-time-limit")?;
    let t = s.run_code("bigram-nll", BIGRAM_NLL)?;
    assert!(
        t.contains("✓ All"),
        "a fresh Python worker runs the next submission: {t}"
    );
    Ok(())
}

#[test]
fn drafts_survive_a_reload_and_reset_restores_the_starter() -> Result<()> {
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    s.open(D1)?;
    let sel = format!("{} [data-testid='editor']", exercise("bigram-nll"));
    let editor = s.browser.wait(&sel, 60)?;
    s.browser.set_value(&editor, "# my draft\n")?;
    s.browser.refresh()?;
    let editor = s.browser.wait(&sel, 60)?;
    let value = s.browser.execute(
        "return arguments[0].value;",
        vec![s.browser.element_json(&editor)],
    )?;
    assert_eq!(value, "# my draft\n");
    let reset = s.browser.wait(
        &format!("{} [data-testid='reset']", exercise("bigram-nll")),
        5,
    )?;
    s.browser.click(&reset)?;
    let value = s.browser.execute(
        "return arguments[0].value;",
        vec![s.browser.element_json(&editor)],
    )?;
    assert!(
        value.as_str().unwrap_or("").contains("def bigram_nll"),
        "{value}"
    );
    Ok(())
}

#[test]
fn tokenizer_playground_counts_tokens_and_trains_our_bpe() -> Result<()> {
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    s.open(B2)?;
    s.browser.wait_text(
        "[data-testid='row-char'] [data-testid='token-count']",
        "tokens",
        60,
    )?;
    let train = s.browser.wait("[data-testid='bpe-train']", 5)?;
    s.browser.click(&train)?;
    let count = s.browser.wait_text(
        "[data-testid='row-trained'] [data-testid='token-count']",
        "tokens",
        180,
    )?;
    let chars = s.browser.wait_text(
        "[data-testid='row-char'] [data-testid='token-count']",
        "tokens",
        5,
    )?;
    let n = |t: &str| -> usize {
        t.split_whitespace()
            .next()
            .unwrap_or("0")
            .replace('\u{202f}', "")
            .parse()
            .unwrap_or(0)
    };
    assert!(
        n(&count) < n(&chars),
        "BPE ({count}) is shorter than characters ({chars})"
    );
    let widget = s.browser.wait("[data-testid='tokenizer-playground']", 5)?;
    s.browser.execute(
        "arguments[0].scrollIntoView();",
        vec![s.browser.element_json(&widget)],
    )?;
    s.screenshot("b2-playground")?;
    Ok(())
}

#[test]
fn the_shipped_model_samples_at_once() -> Result<()> {
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    s.open(D1)?;
    s.browser
        .wait_text("[data-testid='shipped-state']", "Pre-trained model:", 120)?;
    let generate = s.browser.wait("[data-testid='sample-generate']", 5)?;
    s.browser.click(&generate)?;
    let text = wait_for(Duration::from_secs(120), "generated text", || {
        let e = s.browser.find("[data-testid='sample-output']")?;
        let t = s.browser.text(&e).ok()?;
        (t.chars().count() > 100).then_some(t)
    })?;
    assert!(text.starts_with("And God said"), "{text}");
    let widget = s.browser.wait("[data-testid='sample-shipped']", 5)?;
    s.browser.execute(
        "arguments[0].scrollIntoView();",
        vec![s.browser.element_json(&widget)],
    )?;
    s.screenshot("d1-shipped-sample")?;
    Ok(())
}
