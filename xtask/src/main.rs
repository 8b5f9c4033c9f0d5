//! Project tasks for Attention Workshop, the cargo-xtask way: `cargo xtask <task>`.
//!
//! Each task installs the tools it needs when they are missing (see `tools`), so a fresh
//! Debian machine with rustup's stable toolchain needs nothing but `cargo xtask serve` and
//! `cargo xtask test`.

mod bench;
mod cmd;
mod lockfile;
mod site;
mod test;
mod tools;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::cmd::run;
use crate::tools::Cache;

#[derive(Parser)]
#[command(about = "Attention Workshop tasks: cargo xtask <task>")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install every tool the other tasks use (wasm target, trunk, wasm-bindgen-cli, wasm-opt, Pyodide, Chromium, lavapipe).
    Setup,
    /// Build the site (when frontend/index.html exists) and serve it with the runner.
    Serve {
        /// Address the runner listens on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
    },
    /// Run every test: native tests, the engine's wasm32 build, browser tests; then a summary.
    Test,
    /// Measure the engine against PyTorch on the CPU; writes target/bench/*.json and prints a table.
    Bench,
    /// Train the site's small seeded checkpoints into static/models/.
    Assets,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run_task(cli.task) {
        Ok(code) => code,
        Err(err) => {
            // `{:#}` prints the context chain on one line; no backtrace, even with
            // RUST_BACKTRACE set: the chain says what failed and how to fix it.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_task(task: Task) -> Result<ExitCode> {
    let workspace = workspace_root();
    let cache = Cache::from_env()?;
    cache.put_on_path()?;

    match task {
        Task::Setup => setup(&cache, &workspace),
        Task::Serve { addr } => serve(&cache, &workspace, &addr),
        // Reports its own failures, so that its count of tests is the last line printed.
        Task::Test => return Ok(test::run_all(&cache, &workspace)),
        Task::Bench => bench::run_all(&cache, &workspace),
        Task::Assets => assets(&workspace),
    }?;
    Ok(ExitCode::SUCCESS)
}

/// The workspace root: this crate's parent folder.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

fn setup(cache: &Cache, workspace: &Path) -> Result<()> {
    tools::ensure_wasm_target()?;
    tools::ensure_trunk(cache)?;
    tools::ensure_wasm_bindgen(cache, workspace)?;
    tools::ensure_wasm_opt(cache)?;
    tools::ensure_pyodide(cache)?;
    tools::ensure_axe_core(cache)?;
    tools::ensure_apt(tools::BROWSER_PACKAGES)?;
    tools::ensure_apt(tools::VULKAN_PACKAGES)?;
    println!("[setup] every tool is in place");
    Ok(())
}

fn serve(cache: &Cache, workspace: &Path, addr: &str) -> Result<()> {
    let site = if site::index_html(workspace).exists() {
        site::build(cache, workspace)?;
        Some(site::dist(workspace))
    } else {
        println!("[serve] frontend/index.html does not exist yet: starting the runner alone");
        None
    };
    let page = if site.is_some() { "" } else { "api/health" };
    println!("[serve] http://{addr}/{page}");
    run(site::runner_command(site.as_deref(), addr).current_dir(workspace))
}

fn assets(workspace: &Path) -> Result<()> {
    // The dev profile builds dependencies at opt-level 3 (root Cargo.toml), so candle is as
    // fast as in release, and the artifacts are the ones `cargo xtask test` already built.
    run(Command::new("cargo").current_dir(workspace).args([
        "run",
        "-p",
        "engine",
        "--example",
        "assets",
    ]))?;
    let models = workspace.join("static/models");
    let mut files = Vec::new();
    list_files(&models, &mut files).with_context(|| {
        format!(
            "the assets example wrote nothing under {}",
            models.display()
        )
    })?;
    files.sort();
    println!("[assets] under {}:", models.display());
    for (path, bytes) in files {
        let shown = path.strip_prefix(workspace).unwrap_or(&path);
        println!("  {:>12} bytes  {}", bytes, shown.display());
    }
    Ok(())
}

fn list_files(dir: &Path, out: &mut Vec<(PathBuf, u64)>) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            list_files(&entry.path(), out)?;
        } else {
            out.push((entry.path(), meta.len()));
        }
    }
    Ok(())
}

/// `4.2s` under a minute, `6m 12s` above.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m {:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}
