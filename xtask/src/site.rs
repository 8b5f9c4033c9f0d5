//! Building the site with trunk and starting the runner that serves it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use crate::cmd::run_timed;
use crate::tools::{self, Cache};

/// The site exists once the frontend has a trunk entry page.
pub fn index_html(workspace: &Path) -> PathBuf {
    workspace.join("frontend/index.html")
}

pub fn dist(workspace: &Path) -> PathBuf {
    workspace.join("dist")
}

/// `trunk build --release` into `dist/`, after installing what is missing. The root
/// `Trunk.toml` names the page, the output folder and the post-build hook that copies Pyodide
/// (from this cache), the corpus and the models into the site.
pub fn build(cache: &Cache, workspace: &Path) -> Result<()> {
    tools::ensure_wasm_target()?;
    tools::ensure_trunk(cache)?;
    tools::ensure_wasm_bindgen(cache, workspace)?;
    tools::ensure_wasm_opt(cache)?;
    tools::ensure_pyodide(cache)?;

    let took = run_timed(
        Command::new("trunk")
            .current_dir(workspace)
            .args(["build", "--release"]),
    )?;
    println!(
        "[site] trunk build --release into {}: {}",
        dist(workspace).display(),
        crate::human(took)
    );
    Ok(())
}

/// The one place that knows the runner's command line (flags in native-runner/src/lib.rs).
/// `site` is the built site to serve at `/`; without it the runner serves only `/api`.
pub fn runner_command(site: Option<&Path>, addr: &str) -> Command {
    let mut cmd = Command::new("cargo");
    // Dev profile, as bench and assets: dependencies are built at opt-level 3 (root
    // Cargo.toml), and `cargo xtask test` has already built this binary for the runner's tests.
    cmd.args(["run", "-p", "runner", "--"]);
    if let Some(site) = site {
        cmd.arg("--site").arg(site);
    }
    cmd.args(["--addr", addr]);
    cmd
}
