//! End-to-end tests of lesson D3 against the real runner binary: the page is opened from the
//! runner's own origin (`--site $AW_SITE_DIR`), a tiny job is submitted from the form, its
//! curve fills in over SSE, it succeeds, and its checkpoint samples in the browser. And the
//! lesson's exercise, with a right and a wrong answer.
//!
//! The runner binary: `AW_RUNNER_BIN`, else `target/debug/runner` (built by `cargo build -p
//! runner`; `cargo xtask test` builds it in its native stage and passes its path).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use e2e::{Browser, Session, exercise, screenshot_dir, site_dir, wait_for};

/// Browsers are heavy on a 2-core machine: this file's tests take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const D3: &str = "/lesson/pretraining-on-the-runner";

const ESTIMATE: &str = "def estimate(model, train, flops_per_sec):\n    V, T = model['vocab_size'], model['block_size']\n    L, C = model['n_layer'], model['n_embd']\n    b = 1 if model['bias'] else 0\n    block = 12 * C * C + (13 if b else 2) * C\n    n = V * C + T * C + L * block + (1 + b) * C\n    d = train['batch_size'] * train['grad_accum_steps'] * T * train['max_steps']\n    flops = 6 * n * d\n    tps = flops_per_sec / (6 * n)\n    return [n, flops, tps, d / tps]\n";
/// The classic mistake: the tied output head counted as a second matrix.
const ESTIMATE_HEAD_TWICE: &str = "def estimate(model, train, flops_per_sec):\n    V, T = model['vocab_size'], model['block_size']\n    L, C = model['n_layer'], model['n_embd']\n    b = 1 if model['bias'] else 0\n    block = 12 * C * C + (13 if b else 2) * C\n    n = 2 * V * C + T * C + L * block + (1 + b) * C\n    d = train['batch_size'] * train['grad_accum_steps'] * T * train['max_steps']\n    flops = 6 * n * d\n    tps = flops_per_sec / (6 * n)\n    return [n, flops, tps, d / tps]\n";

/// The runner as a child process on a free port with a fresh data directory; killed and its
/// folder removed on drop.
struct Runner {
    child: Child,
    url: String,
    data_dir: PathBuf,
}

impl Runner {
    fn start(site: &std::path::Path) -> Result<Self> {
        let bin = std::env::var_os("AW_RUNNER_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                std::env::var_os("CARGO_TARGET_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
                    .join("debug/runner")
            });
        if !bin.exists() {
            bail!(
                "no runner binary at {}; build it with `cargo build -p runner` or set AW_RUNNER_BIN",
                bin.display()
            );
        }
        let data_dir = std::env::temp_dir().join(format!(
            "aw-e2e-runner-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let mut child = Command::new(&bin)
            .args(["--addr", "127.0.0.1:0", "--device", "cpu", "--data-dir"])
            .arg(&data_dir)
            .arg("--site")
            .arg(site)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        // "runner: listening on http://127.0.0.1:PORT" is its first line.
        let stdout = child.stdout.take().context("runner stdout")?;
        let mut stdout = BufReader::new(stdout);
        let mut first = String::new();
        stdout.read_line(&mut first)?;
        // Keep reading: a closed pipe would fail the runner's next write.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let Some(url) = first.trim().strip_prefix("runner: listening on ") else {
            let _ = child.kill();
            bail!("the runner did not start: {first:?}");
        };
        Ok(Self {
            url: url.to_string(),
            child,
            data_dir,
        })
    }

    fn token(&self) -> Result<String> {
        Ok(std::fs::read_to_string(self.data_dir.join("token"))?
            .trim()
            .to_string())
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn number(b: &Browser, css: &str) -> Option<f64> {
    let t = b.text(&b.find(css)?).ok()?;
    t.replace('\u{202f}', "").parse().ok()
}

#[test]
fn a_job_submitted_from_the_lesson_trains_and_its_checkpoint_samples() -> Result<()> {
    let Some(site) = site_dir() else {
        eprintln!("skipped: AW_SITE_DIR is not set (run `cargo xtask test`)");
        return Ok(());
    };
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let runner = Runner::start(&site)?;
    let b = Browser::start().context("starting chromedriver and Chromium")?;
    b.goto(&format!("{}{D3}", runner.url))?;
    // The runner serving the page is the default connection.
    b.wait_text("[data-testid='runner-health']", "Connected: runner", 90)?;
    let field = |id: &str, value: &str| -> Result<()> {
        let e = b.wait(&format!("[data-testid='{id}']"), 5)?;
        b.set_value(&e, value)
    };
    // A width the head count does not divide: the runner's 400 names the field.
    field("runner-token", &runner.token()?)?;
    field("runner-n-layer", "1")?;
    field("runner-n-head", "3")?;
    field("runner-n-embd", "32")?;
    field("runner-block-size", "32")?;
    field("runner-max-steps", "30")?;
    field("runner-batch-size", "8")?;
    field("runner-name", "e2e tiny")?;
    let submit = b.wait("[data-testid='runner-submit']", 5)?;
    b.click(&submit)?;
    let refused = b.wait_text("[data-testid='runner-form-error']", "task.model.n_embd", 20)?;
    assert!(refused.contains("divisible"), "{refused}");
    assert!(
        b.find(".field.invalid [data-testid='runner-n-embd']")
            .is_some()
    );

    field("runner-n-head", "2")?;
    // The estimate before submitting: N for V = 63 (a guess of 80 until a job fixes it), FLOPs.
    let params = number(&b, "[data-testid='estimate-params']").context("an estimate")?;
    assert!((16_000.0..20_000.0).contains(&params), "{params}");
    let basis = b.wait_text("[data-testid='estimate-basis']", "assuming", 5)?;
    assert!(basis.contains("FLOP/s"), "{basis}");
    b.click(&submit)?;
    b.wait("[data-testid='runner-job']", 20)?;
    b.wait_text("[data-testid='job-state']", "succeeded", 60)?;
    let step = number(&b, "[data-testid='job-step']").unwrap_or(0.0);
    assert_eq!(step, 30.0, "every step's event reached the page");
    let points = b.find_all("[data-testid='loss-chart'] circle.dot.val");
    assert!(!points.is_empty(), "validation points on the curve");
    let tps = number(&b, "[data-testid='job-tokens-per-sec']").unwrap_or(0.0);
    assert!(tps > 0.0, "tokens/s from the stream");
    // The job is listed, and the estimate now uses the runner's measured throughput.
    b.wait_text("[data-testid='runner-jobs']", "e2e tiny", 10)?;
    b.wait_text(
        "[data-testid='estimate-basis']",
        "measured on this runner by job 1",
        20,
    )?;

    // A page opened late replays the whole curve.
    b.refresh()?;
    b.wait_text("[data-testid='runner-health']", "Connected", 90)?;
    let watch = b.wait("[data-testid='job-watch-1']", 20)?;
    b.click(&watch)?;
    wait_for(Duration::from_secs(20), "the replayed curve", || {
        number(&b, "[data-testid='job-step']").filter(|s| *s == 30.0)
    })?;

    // Its checkpoint, loaded into the engine worker, samples text.
    let load = b.wait("[data-testid='job-load']", 20)?;
    b.click(&load)?;
    b.wait_text(
        "[data-testid='job-loaded']",
        "Loaded into this tab: step 30",
        60,
    )?;
    let generate = b.wait("[data-testid='job-generate']", 5)?;
    b.click(&generate)?;
    let text = wait_for(Duration::from_secs(60), "sampled text", || {
        let t = b.text(&b.find("[data-testid='job-sample-output']")?).ok()?;
        (t.chars().count() > 100).then_some(t)
    })?;
    assert!(text.starts_with("And God said"), "{text}");
    let job = b.wait("[data-testid='runner-job']", 5)?;
    b.execute("arguments[0].scrollIntoView();", vec![b.element_json(&job)])?;
    b.screenshot(&screenshot_dir().join("d3-runner-job.png"))?;
    println!(
        "runner job: {tps} tokens/s, sample {:?}; test took {:.1} s",
        text.chars().take(60).collect::<String>(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[test]
fn d3_exercise_grades_right_and_wrong_answers() -> Result<()> {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    s.open(D3)?;
    let t = s.run_code("job-estimate", ESTIMATE)?;
    assert!(t.contains("✓ All"), "{t}");
    let t = s.run_code("job-estimate", ESTIMATE_HEAD_TWICE)?;
    assert!(t.contains("✗") && t.contains("tied"), "{t}");
    let ex = s.browser.wait(&exercise("job-estimate"), 5)?;
    s.browser.execute(
        "arguments[0].scrollIntoView();",
        vec![s.browser.element_json(&ex)],
    )?;
    s.screenshot("d3-exercise-feedback")?;
    Ok(())
}
