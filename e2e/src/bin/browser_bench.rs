//! The browser half of `cargo xtask bench`: the built site in headless Chromium on loopback.
//!
//!     browser-bench --site dist --out target/bench/wasm.json
//!
//! Measures, each in a fresh browser profile (a cold cache):
//! - first load: milliseconds from navigation to the course map being interactive (the
//!   `aw-interactive` mark set after the app mounts), and on a lesson page to the engine
//!   worker's wasm running (`aw-engine-ready`);
//! - the site's wasm, gzipped (`gzip -9`), main module and engine worker;
//! - the cases of `engine::bench` in the engine worker (`/bench?run=1`), the same model and
//!   work as the native run.
//!
//! Writes a JSON array of `{"name", "value", "unit"}`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use e2e::{Browser, StaticServer, wait_for};
use serde_json::{Value, json};

/// A page that loads nothing heavy but the engine worker (its shipped-model widget starts it).
const LESSON: &str = "/lesson/bigram-to-gpt";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from)
    };
    let site = flag("--site").context("usage: browser-bench --site DIR --out FILE")?;
    let out = flag("--out").context("usage: browser-bench --site DIR --out FILE")?;
    if !site.join("index.html").exists() {
        bail!("no built site at {}", site.display());
    }
    let server = StaticServer::start(&site)?;
    let mut figures = Vec::new();

    figures.extend(wasm_sizes(&site)?);

    let browser = Browser::start().context("starting chromedriver and Chromium")?;
    browser.goto(&format!("{}/", server.url()))?;
    browser.wait("[data-testid='course-map']", 60)?;
    let interactive = mark(&browser, "aw-interactive")?;
    println!("first load, course map interactive: {interactive:.0} ms");
    figures.push(json!({"name": "first_load_interactive", "value": interactive, "unit": "ms"}));
    drop(browser);

    let browser = Browser::start()?;
    browser.goto(&format!("{}{LESSON}", server.url()))?;
    let ready = mark(&browser, "aw-engine-ready")?;
    println!("first load, {LESSON}: engine worker ready at {ready:.0} ms");
    figures.push(json!({"name": "first_load_engine_ready", "value": ready, "unit": "ms"}));
    drop(browser);

    let browser = Browser::start()?;
    browser.goto(&format!("{}/bench?run=1", server.url()))?;
    println!("running the engine's benchmark in the worker (a minute or more)…");
    let text = wait_for(Duration::from_secs(900), "the benchmark's figures", || {
        let read = |css: &str| browser.find(css).and_then(|e| browser.text(&e).ok());
        read("[data-testid='bench-json']")
            .map(Ok)
            .or_else(|| read(".bench-page .problem").map(Err))
    })?
    .map_err(anyhow::Error::msg)?;
    let bench: Vec<Value> =
        serde_json::from_str(&text).context("the bench page's figures are not a JSON array")?;
    for f in &bench {
        println!("wasm {}: {:.1} {}", f["name"], f["value"], f["unit"]);
    }
    figures.extend(bench);

    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_vec_pretty(&figures)?)?;
    println!("wrote {}", out.display());
    Ok(())
}

/// Milliseconds from navigation start to the performance mark `name`, waiting for it.
fn mark(browser: &Browser, name: &str) -> Result<f64> {
    let script = "const m = performance.getEntriesByName(arguments[0], 'mark')[0]; \
                  return m ? m.startTime : null;";
    wait_for(Duration::from_secs(120), name, || {
        browser
            .execute(script, vec![json!(name)])
            .ok()
            .and_then(|v| v.as_f64())
    })
}

/// Gzipped size of each wasm module of the site (Pyodide, served from `pyodide/`, excluded),
/// and their total.
fn wasm_sizes(site: &Path) -> Result<Vec<Value>> {
    let mut figures = Vec::new();
    let mut total = 0u64;
    for entry in std::fs::read_dir(site)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "wasm") {
            continue;
        }
        let gz = Command::new("gzip")
            .args(["-9", "-c"])
            .arg(&path)
            .output()
            .context("running gzip")?;
        if !gz.status.success() {
            bail!("gzip failed on {}", path.display());
        }
        let bytes = gz.stdout.len() as u64;
        total += bytes;
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        println!("{}: {bytes} bytes gzipped", path.display());
        figures.push(json!({"name": format!("wasm_gzip_{stem}"), "value": bytes, "unit": "bytes"}));
    }
    figures.push(json!({"name": "wasm_gzip_total", "value": total, "unit": "bytes"}));
    Ok(figures)
}
