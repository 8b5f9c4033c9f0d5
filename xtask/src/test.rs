//! `cargo xtask test`: every test, stage by stage, then a summary line per stage. The
//! engine's wasm32 build is proved by the site build (the frontend and its worker link it).
//!
//! A failing stage does not stop the later ones (CI shows every failure at once); the task
//! fails at the end if any stage failed.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cmd::display;
use crate::site;
use crate::tools::{self, Cache};

/// The package that holds the site's end-to-end tests (WebDriver against the built site).
/// It is not a default member, so the native stage does not run it without a built site.
const E2E_PACKAGE: &str = "e2e";

/// A stage either ran (an `Err` is a failure) or had nothing to run yet.
enum Ran {
    Yes,
    Skipped(String),
}

struct StageResult {
    name: &'static str,
    took: Duration,
    outcome: Result<Ran>,
}

/// Runs every stage; the exit code is a failure if any stage failed.
pub fn run_all(cache: &Cache, workspace: &Path) -> ExitCode {
    type StageFn<'a> = Box<dyn Fn(&mut TestCounts) -> Result<Ran> + 'a>;
    let stages: Vec<(&'static str, &str, StageFn)> = vec![
        (
            "native tests",
            "cargo test on the default members (the wasm-only frontend is not one), then the engine's GPU kernels on lavapipe",
            Box::new(native_tests),
        ),
        (
            "browser tests",
            "trunk build of the site, then end-to-end tests in headless Chromium",
            Box::new(|counts| browser_tests(cache, workspace, counts)),
        ),
    ];

    let mut counts = TestCounts::default();
    let mut results = Vec::new();
    for (i, (name, what, stage)) in stages.iter().enumerate() {
        println!("\n==> [{}/{}] {name}: {what}", i + 1, stages.len());
        let start = Instant::now();
        let outcome = stage(&mut counts);
        if let Err(err) = &outcome {
            println!("==> {name} failed: {err:#}");
        }
        results.push(StageResult {
            name,
            took: start.elapsed(),
            outcome,
        });
    }

    println!("\n==> summary");
    for r in &results {
        match &r.outcome {
            Ok(Ran::Yes) => println!("  PASS  {:<20} {}", r.name, crate::human(r.took)),
            Ok(Ran::Skipped(why)) => println!("  SKIP  {:<20} {why}", r.name),
            Err(err) => println!("  FAIL  {:<20} {}  ({err:#})", r.name, crate::human(r.took)),
        }
    }
    let failed = results.iter().filter(|r| r.outcome.is_err()).count();
    if failed > 0 {
        println!("{failed} of {} stages failed", results.len());
    }
    // The last line is the plain count CI reads: real tests, not stages.
    println!("{}", counts.closing_line());
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn native_tests(counts: &mut TestCounts) -> Result<Ran> {
    tools::ensure_apt(tools::VULKAN_PACKAGES)?;
    // The workspace's default-members are every crate that builds natively; the frontend
    // is wasm-only and is tested in the browser stage.
    cargo_test(
        Command::new("cargo").args(["test", "--no-fail-fast"]),
        counts,
    )?;
    // The WGSL kernels through native wgpu on the Vulkan driver installed above (lavapipe
    // without a GPU): a missing adapter fails here instead of skipping.
    cargo_test(
        Command::new("cargo")
            .args(GPU_TEST)
            .env("AW_REQUIRE_GPU", "1"),
        counts,
    )?;
    Ok(Ran::Yes)
}

/// The engine's GPU kernels and GPU GPT against candle on the CPU (`wasm-engine/tests/gpu.rs`).
const GPU_TEST: &[&str] = &[
    "test",
    "--no-fail-fast",
    "-p",
    "engine",
    "--features",
    "webgpu",
    "--test",
    "gpu",
];

/// Builds the site with trunk and runs the end-to-end tests against it in headless
/// Chromium. Skips, saying why, while the site or its tests do not exist.
fn browser_tests(cache: &Cache, workspace: &Path, counts: &mut TestCounts) -> Result<Ran> {
    if !site::index_html(workspace).exists() {
        return Ok(Ran::Skipped(
            "frontend/index.html does not exist yet".into(),
        ));
    }
    tools::ensure_apt(tools::BROWSER_PACKAGES)?;
    let axe_js = tools::ensure_axe_core(cache)?;
    site::build(cache, workspace)?;
    if !workspace.join(E2E_PACKAGE).join("Cargo.toml").exists() {
        return Ok(Ran::Skipped(format!(
            "site built; no end-to-end tests yet (package {E2E_PACKAGE}/)"
        )));
    }
    // e2e/tests/runner.rs starts the real runner binary; the native stage built it already,
    // so this is a no-op unless that stage was skipped.
    crate::cmd::run(
        Command::new("cargo")
            .current_dir(workspace)
            .args(["build", "-p", "runner"]),
    )?;
    let runner_bin = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("debug/runner");
    cargo_test(
        Command::new("cargo")
            .args(["test", "--no-fail-fast", "-p", E2E_PACKAGE])
            .env("AW_SITE_DIR", site::dist(workspace))
            .env("AW_RUNNER_BIN", runner_bin)
            .env("AW_AXE_JS", axe_js)
            .env("CHROMEDRIVER", "/usr/bin/chromedriver")
            .env("CHROMIUM", "/usr/bin/chromium"),
        counts,
    )?;
    Ok(Ran::Yes)
}

/// Runs a `cargo test`, echoing its output and adding up its `test result:` lines.
fn cargo_test(cmd: &mut Command, counts: &mut TestCounts) -> Result<()> {
    let line = display(cmd);
    println!("$ {line}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{line}`"))?;
    let stdout = child
        .stdout
        .take()
        .context("child stdout was not captured")?;
    for text in BufReader::new(stdout).lines() {
        let text = text?;
        println!("{text}");
        counts.add(&text);
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// Test counts summed over libtest's closing lines.
#[derive(Debug, Default, PartialEq)]
struct TestCounts {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl TestCounts {
    /// Adds a line like `test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; ...`;
    /// other lines are ignored.
    fn add(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        let Some((_, fields)) = rest.split_once(". ") else {
            return;
        };
        for field in fields.split(';') {
            let mut words = field.split_whitespace();
            let (Some(n), Some(what)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match what {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }

    fn closing_line(&self) -> String {
        format!(
            "tests: {} passed, {} failed, {} skipped",
            self.passed, self.failed, self.ignored
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_libtest_result_lines_and_ignores_the_rest() {
        let mut counts = TestCounts::default();
        for line in [
            "running 3 tests",
            "test tokenizer::round_trip ... ok",
            "test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s",
            "test result: FAILED. 5 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.20s",
            "   Doc-tests engine",
            "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s",
        ] {
            counts.add(line);
        }
        assert_eq!(
            counts,
            TestCounts {
                passed: 8,
                failed: 2,
                ignored: 1
            }
        );
        assert_eq!(
            counts.closing_line(),
            "tests: 8 passed, 2 failed, 1 skipped"
        );
    }
}
