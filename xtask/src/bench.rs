//! `cargo xtask bench`: the engine against PyTorch on the CPU, same model, same machine, same
//! run.
//!
//! Both sides read the model and workload from `bench/config.json` and write a JSON array of
//! figures, `{"name": "train", "value": 1234.5, "unit": "tokens/s"}`, one object per figure
//! (extra keys are ignored). Names both sides use: `train` (AdamW steps),
//! `sample_kv_cache` and `sample_no_kv_cache` (new tokens from a one-token prompt). The
//! summary adds `kv_cache_speedup` for each side and pairs every engine figure with the
//! peer's: `{"name", "value", "unit", "peer": {"name", "value"}, "ratio"}`.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::cmd::run;
use crate::site;
use crate::tools::{self, Cache};

pub const TRAIN: &str = "train";
pub const SAMPLE_KV: &str = "sample_kv_cache";
pub const SAMPLE_NO_KV: &str = "sample_no_kv_cache";
pub const KV_SPEEDUP: &str = "kv_cache_speedup";
pub const ENGINE: &str = "engine-cpu";
pub const PEER: &str = "pytorch-cpu";
pub const ENGINE_1: &str = "engine-cpu-1-thread";
/// The runner's overhead bench (`native-runner/examples/overhead.rs`): a tiny job through the
/// HTTP API and SSE, against the same training called directly.
pub const RUNNER_API: &str = "runner_job_api";
pub const RUNNER_DIRECT: &str = "runner_job_direct";
pub const RUNNER_JOB: &str = "runner_job";
pub const DIRECT: &str = "engine-direct";
/// Wall time through the runner over wall time called directly, at most (the target).
pub const RUNNER_TARGET: f64 = 1.2;
/// The engine's WGSL kernels through native wgpu (`gpu_*` figures) against candle on the CPU
/// (`cpu_*`), same sizes and weights, same run.
pub const GPU: &str = "webgpu-kernels";
pub const CPU: &str = "candle-cpu";

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: String,
}

/// One engine figure beside the peer's figure of the same name.
#[derive(Debug, Serialize, PartialEq)]
pub struct Compared {
    pub name: String,
    /// The engine's figure; `None` when the engine did not measure it.
    pub value: Option<f64>,
    pub unit: String,
    pub peer: Option<PeerFigure>,
    /// `value / peer.value`: above 1 the engine is faster.
    pub ratio: Option<f64>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct PeerFigure {
    pub name: String,
    pub value: f64,
}

pub fn run_all(cache: &Cache, workspace: &Path) -> Result<()> {
    tools::ensure_torch()?;
    let out_dir = workspace.join("target/bench");
    fs::create_dir_all(&out_dir)?;
    let engine_json = out_dir.join("engine.json");
    let engine_1_json = out_dir.join("engine_1_thread.json");
    let peer_json = out_dir.join("pytorch_cpu.json");
    let wasm_json = out_dir.join("wasm.json");
    let runner_json = out_dir.join("runner.json");
    // A figure from an earlier run must never be reported as this run's.
    for stale in [
        &engine_json,
        &engine_1_json,
        &peer_json,
        &wasm_json,
        &runner_json,
    ] {
        let _ = fs::remove_file(stale);
    }

    println!("\n==> engine ({ENGINE})");
    run(&mut engine_bench(workspace, &engine_json))?;
    println!("\n==> engine on one thread (the browser's situation)");
    run(engine_bench(workspace, &engine_1_json)
        .args([
            "--cases",
            &[TRAIN, SAMPLE_KV, SAMPLE_NO_KV, "kv_cache", "int8_matmul"].join(","),
        ])
        .env("RAYON_NUM_THREADS", "1"))?;

    println!("\n==> peer ({PEER})");
    run(Command::new("python3")
        .current_dir(workspace)
        .args([
            "bench/nanogpt_cpu.py",
            "--config",
            "bench/config.json",
            "--out",
        ])
        .arg(&peer_json))?;

    println!("\n==> the site in headless Chromium (wasm)");
    tools::ensure_apt(tools::BROWSER_PACKAGES)?;
    site::build(cache, workspace)?;
    run(Command::new("cargo")
        .current_dir(workspace)
        .args(["run", "-p", "e2e", "--bin", "browser-bench", "--", "--site"])
        .arg(site::dist(workspace))
        .arg("--out")
        .arg(&wasm_json))?;

    println!("\n==> the runner: a tiny job through the API vs the engine called directly");
    run(Command::new("cargo")
        .current_dir(workspace)
        .args([
            "run",
            "-p",
            "runner",
            "--example",
            "overhead",
            "--",
            "--out",
        ])
        .arg(&runner_json))?;

    let engine = read_figures(&engine_json)?;
    let engine_1 = read_figures(&engine_1_json)?;
    let wasm = read_figures(&wasm_json)?;
    let sections = [
        (
            format!("{ENGINE} vs {PEER}"),
            compare(&engine, &read_figures(&peer_json)?, PEER),
        ),
        (
            format!("wasm in Chromium vs {ENGINE_1}"),
            prefixed("wasm_", compare(&bench_cases(&wasm), &engine_1, ENGINE_1)),
        ),
        (
            format!("wasm in Chromium vs {ENGINE} (all threads)"),
            prefixed(
                "wasm_all_threads_",
                compare(&pick(&wasm, &[TRAIN]), &pick(&engine, &[TRAIN]), ENGINE),
            ),
        ),
        (
            format!("{GPU} through native wgpu vs {CPU} (matmul n×n×n; generation with KV cache)"),
            gpu_rows(&engine),
        ),
        (
            "the site's first load (loopback, cold cache)".into(),
            compare(&site_figures(&wasm), &[], "-"),
        ),
        (
            format!(
                "the runner's overhead (target ≤ {RUNNER_TARGET}x; ratio = through the API / direct)"
            ),
            runner_rows(&read_figures(&runner_json)?),
        ),
    ];
    let mut summary = Vec::new();
    for (title, rows) in sections {
        println!("\n{title}\n{}", format_table(&rows));
        summary.extend(rows);
    }
    let path = out_dir.join("summary.json");
    fs::write(&path, serde_json::to_string_pretty(&summary)? + "\n")?;
    println!("wrote {}", path.display());
    Ok(())
}

/// The GPU figures beside the CPU's: `gpu_matmul_512` against `cpu_matmul_512` as row
/// `matmul_512`, `gpu_generate` against `cpu_generate` as `generate`. Empty without a GPU.
pub fn gpu_rows(figures: &[Figure]) -> Vec<Compared> {
    let side = |prefix: &str| -> Vec<Figure> {
        figures
            .iter()
            .filter_map(|f| {
                f.name.strip_prefix(prefix).map(|rest| Figure {
                    name: rest.to_string(),
                    ..f.clone()
                })
            })
            .collect()
    };
    let gpu = side("gpu_");
    if gpu.is_empty() {
        return Vec::new();
    }
    compare(&gpu, &side("cpu_"), CPU)
}

/// `engine/examples/bench.rs` writing to `out`. Dev profile: dependencies are built at
/// opt-level 3 (root Cargo.toml), so candle runs at full speed and the bench reuses the test
/// build instead of a 15-minute release one.
fn engine_bench(workspace: &Path, out: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(workspace)
        .args([
            "run",
            "-p",
            "engine",
            "--features",
            "webgpu",
            "--example",
            "bench",
            "--",
            "--out",
        ])
        .arg(out);
    cmd
}

/// The runner's job time through the API beside the same training called directly: one row,
/// `runner_job`, whose ratio is the overhead (above 1 the API costs time).
pub fn runner_rows(figures: &[Figure]) -> Vec<Compared> {
    let renamed = |name: &str| {
        pick(figures, &[name])
            .into_iter()
            .map(|f| Figure {
                name: RUNNER_JOB.into(),
                ..f
            })
            .collect::<Vec<_>>()
    };
    compare(&renamed(RUNNER_API), &renamed(RUNNER_DIRECT), DIRECT)
}

/// The figures named `names`, in that order.
fn pick(figures: &[Figure], names: &[&str]) -> Vec<Figure> {
    names
        .iter()
        .filter_map(|n| figures.iter().find(|f| f.name == *n).cloned())
        .collect()
}

/// The browser's own figures: load times and wasm sizes.
fn is_site_figure(f: &Figure) -> bool {
    f.name.starts_with("first_load") || f.name.starts_with("wasm_gzip")
}

/// The engine's benchmark cases among the browser's figures.
fn bench_cases(figures: &[Figure]) -> Vec<Figure> {
    figures
        .iter()
        .filter(|f| !is_site_figure(f))
        .cloned()
        .collect()
}

/// The browser's figures that are not benchmark cases: load times and wasm sizes.
fn site_figures(figures: &[Figure]) -> Vec<Figure> {
    figures
        .iter()
        .filter(|f| is_site_figure(f))
        .cloned()
        .collect()
}

/// Names the rows of a section apart from the same figure in another section.
fn prefixed(prefix: &str, rows: Vec<Compared>) -> Vec<Compared> {
    rows.into_iter()
        .map(|r| Compared {
            name: format!("{prefix}{}", r.name),
            ..r
        })
        .collect()
}

/// The figures in `path`, or none when the file does not exist.
fn read_figures(path: &Path) -> Result<Vec<Figure>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = fs::read_to_string(path)?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a JSON array of {{\"name\", \"value\", \"unit\"}} objects",
            path.display()
        )
    })
}

/// The KV-cache speed-up of one side, when it measured both sampling figures.
fn kv_speedup(figures: &[Figure]) -> Option<Figure> {
    let find = |name: &str| figures.iter().find(|f| f.name == name).map(|f| f.value);
    let (kv, no_kv) = (find(SAMPLE_KV)?, find(SAMPLE_NO_KV)?);
    (no_kv > 0.0).then(|| Figure {
        name: KV_SPEEDUP.into(),
        value: kv / no_kv,
        unit: "x".into(),
    })
}

/// Pairs figures by name, adding the KV-cache speed-up of each side; known figures first.
pub fn compare(engine: &[Figure], peer: &[Figure], peer_name: &str) -> Vec<Compared> {
    let engine: Vec<Figure> = engine.iter().cloned().chain(kv_speedup(engine)).collect();
    let peer: Vec<Figure> = peer.iter().cloned().chain(kv_speedup(peer)).collect();
    let mut names: Vec<&str> = engine.iter().map(|f| f.name.as_str()).collect();
    for f in &peer {
        if !names.contains(&f.name.as_str()) {
            names.push(&f.name);
        }
    }
    // The known figures in reading order, then any others as they came.
    let order = [TRAIN, SAMPLE_KV, SAMPLE_NO_KV, KV_SPEEDUP];
    names.sort_by_key(|n| order.iter().position(|o| o == n).unwrap_or(order.len()));

    names
        .into_iter()
        .map(|name| {
            let mine = engine.iter().find(|f| f.name == name);
            let theirs = peer.iter().find(|f| f.name == name);
            let unit = mine.or(theirs).map(|f| f.unit.clone()).unwrap_or_default();
            let value = mine.map(|f| f.value);
            let ratio = match (value, theirs) {
                (Some(v), Some(p)) if p.value > 0.0 => Some(v / p.value),
                _ => None,
            };
            Compared {
                name: name.to_string(),
                value,
                unit,
                peer: theirs.map(|f| PeerFigure {
                    name: peer_name.into(),
                    value: f.value,
                }),
                ratio,
            }
        })
        .collect()
}

/// Three significant figures or so, whatever the magnitude.
fn format_value(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A plain-text table, columns padded to their widest cell.
pub fn format_table(rows: &[Compared]) -> String {
    let missing = || "-".to_string();
    let header = [
        "figure".to_string(),
        "unit".to_string(),
        "value".to_string(),
        rows.iter()
            .find_map(|r| r.peer.as_ref().map(|p| p.name.clone()))
            .unwrap_or_else(|| "peer".into()),
        "value/peer".to_string(),
    ];
    let mut cells = vec![header];
    for r in rows {
        cells.push([
            r.name.clone(),
            r.unit.clone(),
            r.value.map(format_value).unwrap_or_else(missing),
            r.peer
                .as_ref()
                .map(|p| format_value(p.value))
                .unwrap_or_else(missing),
            r.ratio.map(|x| format!("{x:.2}x")).unwrap_or_else(missing),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| cells.iter().map(|row| row[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &cells {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            // Names and units read left to right; numbers line up on the right.
            .map(|(c, (cell, w))| {
                if c < 2 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runner_row_pairs_api_and_direct_times() {
        let figures = [
            Figure {
                name: RUNNER_API.into(),
                value: 3.6,
                unit: "s".into(),
            },
            Figure {
                name: RUNNER_DIRECT.into(),
                value: 3.0,
                unit: "s".into(),
            },
            Figure {
                name: "runner_overhead".into(),
                value: 1.2,
                unit: "x".into(),
            },
        ];
        let rows = runner_rows(&figures);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].name, RUNNER_JOB);
        assert_eq!(rows[0].unit, "s");
        assert_eq!(rows[0].value, Some(3.6));
        assert_eq!(
            rows[0].peer.as_ref().map(|p| (p.name.as_str(), p.value)),
            Some((DIRECT, 3.0))
        );
        assert!((rows[0].ratio.unwrap() - 1.2).abs() < 1e-12);
        assert!(runner_rows(&[]).is_empty());
    }

    #[test]
    fn gpu_rows_pair_each_gpu_figure_with_the_cpus() {
        let figures = [
            fig("train", 1.0),
            fig("cpu_matmul_64", 10.0),
            fig("gpu_matmul_64", 5.0),
            fig("cpu_generate", 400.0),
            fig("gpu_generate", 100.0),
        ];
        let rows = gpu_rows(&figures);
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["matmul_64", "generate"]);
        assert_eq!(rows[0].ratio, Some(0.5));
        assert_eq!(rows[1].peer.as_ref().map(|p| p.name.as_str()), Some(CPU));
        assert_eq!(rows[1].ratio, Some(0.25));
        // No adapter: no GPU figures, no section rows (the CPU ones alone say nothing).
        assert!(gpu_rows(&figures[..2]).is_empty());
    }

    fn fig(name: &str, value: f64) -> Figure {
        Figure {
            name: name.into(),
            value,
            unit: "tokens/s".into(),
        }
    }

    #[test]
    fn ratios_pair_by_name_and_add_each_sides_kv_speedup() {
        let engine = [
            fig(TRAIN, 5000.0),
            fig(SAMPLE_KV, 900.0),
            fig(SAMPLE_NO_KV, 300.0),
        ];
        let peer = [
            fig(SAMPLE_NO_KV, 150.0),
            fig(TRAIN, 10000.0),
            fig(SAMPLE_KV, 600.0),
        ];
        let rows = compare(&engine, &peer, PEER);
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, [TRAIN, SAMPLE_KV, SAMPLE_NO_KV, KV_SPEEDUP]);
        assert_eq!(rows[0].ratio, Some(0.5));
        assert_eq!(rows[2].ratio, Some(2.0));
        let kv = &rows[3];
        assert_eq!(kv.unit, "x");
        assert_eq!(kv.value, Some(3.0)); // 900 / 300
        assert_eq!(kv.peer.as_ref().map(|p| p.value), Some(4.0)); // 600 / 150
        assert_eq!(kv.ratio, Some(0.75));
    }

    #[test]
    fn a_missing_side_has_no_ratio() {
        let peer = [
            fig(TRAIN, 10000.0),
            fig(SAMPLE_KV, 600.0),
            fig(SAMPLE_NO_KV, 150.0),
        ];
        let rows = compare(&[], &peer, PEER);
        assert_eq!(rows.len(), 4);
        assert!(rows.iter().all(|r| r.value.is_none() && r.ratio.is_none()));
        assert_eq!(rows[3].peer.as_ref().map(|p| p.value), Some(4.0));
        // A zero peer figure gives no ratio rather than infinity.
        let rows = compare(&[fig(TRAIN, 1.0)], &[fig(TRAIN, 0.0)], PEER);
        assert_eq!(rows[0].ratio, None);
    }

    #[test]
    fn table_pads_columns_and_formats_numbers() {
        let engine = [
            fig(TRAIN, 5123.4),
            fig(SAMPLE_KV, 91.26),
            fig(SAMPLE_NO_KV, 30.0),
        ];
        let peer = [fig(TRAIN, 10246.8), fig(SAMPLE_NO_KV, 15.0)];
        let table = format_table(&compare(&engine, &peer, PEER));
        let expected = "\
figure              unit      value  pytorch-cpu  value/peer
train               tokens/s   5123        10247       0.50x
sample_kv_cache     tokens/s   91.3            -           -
sample_no_kv_cache  tokens/s   30.0         15.0       2.00x
kv_cache_speedup    x          3.04            -           -
";
        assert_eq!(table, expected);
    }

    #[test]
    fn summary_json_has_one_object_per_figure() {
        let rows = compare(&[fig(TRAIN, 2.0)], &[fig(TRAIN, 4.0)], PEER);
        let json = serde_json::to_value(&rows).unwrap();
        assert_eq!(
            json,
            serde_json::json!([{
                "name": "train", "value": 2.0, "unit": "tokens/s",
                "peer": {"name": "pytorch-cpu", "value": 4.0}, "ratio": 0.5
            }])
        );
    }
}
