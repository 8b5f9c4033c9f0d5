//! The tools the tasks need, each installed on first use.
//!
//! Everything that is not a Debian or PyPI package lives in a cache outside the clone,
//! `$HOME/.cache/attention-workshop/`, because CI runs in a fresh clone on the same machine
//! and a tool under `target/` would be rebuilt every run. Each `ensure_*` checks for the tool
//! (and its version) first, so a second run costs a few milliseconds. Nothing is downloaded
//! from GitHub: trunk is told `offline = true` in `Trunk.toml` and finds these on `PATH`.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::cmd::{probe, run_timed};
use crate::lockfile;

/// trunk 0.22 needs a newer rustc than 1.95 (see shared/TOOLCHAIN.md).
pub const TRUNK_VERSION: &str = "0.21.14";
/// Debian's binaryen (108) writes modules that fail at run time; the npm build of 132 works.
pub const BINARYEN_VERSION: &str = "132";
/// Runs the site's Python exercises in a module worker; served from `dist/pyodide/`.
pub const PYODIDE_VERSION: &str = "314.0.7";
/// Accessibility checks in the browser tests (`e2e/tests/accessibility.rs`).
pub const AXE_CORE_VERSION: &str = "4.14.1";
/// Headless Chromium and its WebDriver for the browser tests.
pub const BROWSER_PACKAGES: &[&str] = &["chromium", "chromium-driver"];
/// lavapipe: a Vulkan adapter on the CPU, so native wgpu kernels are tested without a GPU.
pub const VULKAN_PACKAGES: &[&str] = &["mesa-vulkan-drivers"];

/// The folder that outlives a fresh clone.
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn from_env() -> Result<Self> {
        let home = env::var_os("HOME").context("HOME is not set; set it so tools can be cached")?;
        let dir = PathBuf::from(home).join(".cache/attention-workshop");
        fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
        Ok(Self { dir })
    }

    /// `cargo install --root` puts binaries here.
    pub fn bin(&self) -> PathBuf {
        self.dir.join("bin")
    }

    /// Where `npm install --prefix` puts packages; their binaries are in `.bin/`.
    pub fn node_modules(&self) -> PathBuf {
        self.dir.join("node_modules")
    }

    /// Puts the cached binaries first on this process's `PATH`, so every child (cargo,
    /// trunk, test binaries) finds them.
    pub fn put_on_path(&self) -> Result<()> {
        let mut dirs = vec![self.bin(), self.node_modules().join(".bin")];
        dirs.extend(env::split_paths(&env::var_os("PATH").unwrap_or_default()));
        let path: OsString = env::join_paths(dirs).context("a cache path contains ':'")?;
        // SAFETY: called from `main` before any thread is started, so nothing reads the
        // environment concurrently.
        unsafe { env::set_var("PATH", path) };
        Ok(())
    }
}

fn present(tool: &str, version: &str) {
    println!("[tools] {tool} {version}: present");
}

fn installed(tool: &str, version: &str, took: Duration) {
    println!(
        "[tools] {tool} {version}: installed in {}",
        crate::human(took)
    );
}

/// `rustup target add wasm32-unknown-unknown`.
pub fn ensure_wasm_target() -> Result<()> {
    const TARGET: &str = "wasm32-unknown-unknown";
    let have = probe(Command::new("rustup").args(["target", "list", "--installed"]))
        .is_some_and(|list| list.lines().any(|l| l.trim() == TARGET));
    if have {
        present("rust target", TARGET);
        return Ok(());
    }
    let took = run_timed(Command::new("rustup").args(["target", "add", TARGET]))?;
    installed("rust target", TARGET, took);
    Ok(())
}

/// trunk, built without its release profile's fat LTO (20 minutes on 2 cores otherwise).
pub fn ensure_trunk(cache: &Cache) -> Result<()> {
    let want = format!("trunk {TRUNK_VERSION}");
    if probe(Command::new("trunk").arg("--version")).as_deref() == Some(want.as_str()) {
        present("trunk", TRUNK_VERSION);
        return Ok(());
    }
    // `--locked`: without it cargo picks cssparser 0.37 and lightningcss fails to compile.
    let took = run_timed(
        Command::new("cargo")
            .args([
                "install",
                &format!("trunk@{TRUNK_VERSION}"),
                "--locked",
                "--debug",
                "--root",
            ])
            .arg(&cache.dir),
    )?;
    installed("trunk", TRUNK_VERSION, took);
    Ok(())
}

/// wasm-bindgen-cli at exactly the version of `wasm-bindgen` in `Cargo.lock`; nothing when the
/// lock file has no wasm-bindgen.
pub fn ensure_wasm_bindgen(cache: &Cache, workspace: &Path) -> Result<()> {
    let lock_path = workspace.join("Cargo.lock");
    let lock = fs::read_to_string(&lock_path)
        .with_context(|| format!("could not read {}", lock_path.display()))?;
    let Some(version) = lockfile::single_version(&lock, "wasm-bindgen")? else {
        println!("[tools] wasm-bindgen-cli: not needed (Cargo.lock has no wasm-bindgen)");
        return Ok(());
    };
    let want = format!("wasm-bindgen {version}");
    if probe(Command::new("wasm-bindgen").arg("--version")).as_deref() == Some(want.as_str()) {
        present("wasm-bindgen-cli", &version);
        return Ok(());
    }
    // Not `--locked`: its lock pins a dependency newer than the registry here (TOOLCHAIN.md).
    let took = run_timed(
        Command::new("cargo")
            .args(["install", &format!("wasm-bindgen-cli@{version}"), "--root"])
            .arg(&cache.dir),
    )?;
    installed("wasm-bindgen-cli", &version, took);
    Ok(())
}

/// wasm-opt from the npm package `binaryen`.
pub fn ensure_wasm_opt(cache: &Cache) -> Result<()> {
    ensure_npm_package(cache, "binaryen", BINARYEN_VERSION)
}

/// Pyodide from the npm registry; trunk's post-build hook copies it into `dist/pyodide/`.
pub fn ensure_pyodide(cache: &Cache) -> Result<()> {
    ensure_npm_package(cache, "pyodide", PYODIDE_VERSION)
}

/// axe-core from the npm registry; the browser tests inject its `axe.min.js` into each page.
pub fn ensure_axe_core(cache: &Cache) -> Result<PathBuf> {
    ensure_npm_package(cache, "axe-core", AXE_CORE_VERSION)?;
    Ok(cache.node_modules().join("axe-core/axe.min.js"))
}

fn ensure_npm_package(cache: &Cache, name: &str, version: &str) -> Result<()> {
    let manifest = cache.node_modules().join(name).join("package.json");
    let have = fs::read_to_string(&manifest)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|json| json["version"].as_str().map(str::to_owned));
    if let Some(have) = have
        && version_matches(&have, version)
    {
        present(name, &have);
        return Ok(());
    }
    let took = run_timed(
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&cache.dir)
            .arg(format!("{name}@{version}")),
    )?;
    installed(name, version, took);
    Ok(())
}

/// `132.0.0` matches the request `132`; `1320.0.0` does not.
fn version_matches(have: &str, want: &str) -> bool {
    have == want
        || have
            .strip_prefix(want)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// Debian packages through apt-get (with sudo when not root).
pub fn ensure_apt(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if missing.is_empty() {
        present(&packages.join(", "), "(apt)");
        return Ok(());
    }
    let root = probe(Command::new("id").arg("-u")).as_deref() == Some("0");
    let apt_get = || {
        let mut cmd = if root {
            Command::new("apt-get")
        } else {
            // -n: CI has no terminal to type a password into; fail instead of hanging.
            let mut sudo = Command::new("sudo");
            sudo.args(["-n", "apt-get"]);
            sudo
        };
        cmd.env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    let mut took = run_timed(apt_get().args(["update", "-q"]))?;
    took += run_timed(apt_get().args(["install", "-y", "-q"]).args(&missing))?;
    for p in &missing {
        if !dpkg_installed(p) {
            bail!("apt-get finished but {p} is not installed; try `apt-get install {p}` by hand");
        }
    }
    installed(&missing.join(", "), "(apt)", took);
    Ok(())
}

fn dpkg_installed(package: &str) -> bool {
    probe(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))
        .is_some_and(|status| status == "install ok installed")
}

/// PyTorch from PyPI, for the benchmark's peer only (the CUDA build, large; it runs on CPU).
pub fn ensure_torch() -> Result<()> {
    let version =
        probe(Command::new("python3").args(["-c", "import torch; print(torch.__version__)"]));
    if let Some(version) = version {
        present("torch", &version);
        return Ok(());
    }
    let took = run_timed(Command::new("python3").args(["-m", "pip", "install", "torch"]))?;
    installed("torch", "(pip)", took);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npm_versions_match_on_whole_components() {
        assert!(version_matches("132.0.0", "132"));
        assert!(version_matches("314.0.7", "314.0.7"));
        assert!(!version_matches("1320.0.0", "132"));
        assert!(!version_matches("131.0.0", "132"));
    }
}
