//! Building the site with trunk and starting the runner that serves it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::cmd::run_timed;
use crate::tools::{self, Cache};

/// The site exists once the frontend has a trunk entry page.
pub fn index_html(workspace: &Path) -> PathBuf {
    workspace.join("frontend/index.html")
}

pub fn dist(workspace: &Path) -> PathBuf {
    workspace.join("dist")
}

/// `trunk build --release` into `dist/`, then Pyodide into `dist/pyodide/`. Installs what is
/// missing first.
pub fn build(cache: &Cache, workspace: &Path) -> Result<()> {
    tools::ensure_wasm_target()?;
    tools::ensure_trunk(cache)?;
    tools::ensure_wasm_bindgen(cache, workspace)?;
    tools::ensure_wasm_opt(cache)?;
    let pyodide = tools::ensure_pyodide(cache)?;

    let dist = dist(workspace);
    let took = run_timed(
        Command::new("trunk")
            .current_dir(workspace.join("frontend"))
            .args(["build", "--release", "--dist"])
            .arg(&dist)
            .arg("index.html"),
    )?;
    println!("[site] trunk build --release: {}", crate::human(took));

    // trunk empties dist/ on every build, so the copy happens after it.
    copy_files(&pyodide, &dist.join("pyodide"))?;
    println!("[site] built into {}", dist.display());
    Ok(())
}

/// Copies the regular files at the top of `from` (Pyodide's runtime is flat) into `to`.
fn copy_files(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).with_context(|| format!("could not create {}", to.display()))?;
    for entry in fs::read_dir(from).with_context(|| format!("could not read {}", from.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            let dest = to.join(entry.file_name());
            fs::copy(entry.path(), &dest)
                .with_context(|| format!("could not copy to {}", dest.display()))?;
        }
    }
    Ok(())
}

/// The one place that knows the runner's command line. `site` is the built site to serve;
/// without it the runner serves only its own pages (health).
pub fn runner_command(site: Option<&Path>, addr: &str) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.args(["run", "--release", "-p", "runner", "--"]);
    if let Some(site) = site {
        cmd.arg("--site").arg(site);
    }
    cmd.args(["--addr", addr]);
    cmd
}
