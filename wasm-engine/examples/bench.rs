//! Engine side of `cargo xtask bench`: the cases of `engine::bench` on the model in
//! `bench/config.json`, on candle's CPU backend (or CUDA when built with `--features cuda`
//! and a GPU is present). The site's engine worker runs the same cases in the browser.
//!
//!     cargo run -p engine --example bench -- --out target/bench/engine.json
//!
//! `RAYON_NUM_THREADS=1` (read by candle too) measures one core, the browser's situation.
//! With `--features webgpu` the `gpu` cases add the WGSL kernels through native wgpu.

use std::path::PathBuf;

use anyhow::{Context, Result};
use engine::bench::{self, BenchConfig};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let out = flag("--out")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench/engine.json"));
    // `--cases train,sample_kv_cache`: a subset (default all).
    let cases: Option<Vec<&str>> = flag("--cases").map(|c| c.split(',').collect());
    let wanted = |name: &str| cases.as_ref().is_none_or(|c| c.contains(&name));

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let config: BenchConfig = serde_json::from_slice(
        &std::fs::read(root.join("bench/config.json")).context("reading bench/config.json")?,
    )?;
    let device = engine::device::best();
    println!(
        "engine bench on {device:?}, {} threads",
        candle_core::utils::get_num_threads()
    );

    let (train, model) = bench::train(&config, &device, |_, _| {})?;
    println!("{}: {:.0} {}", train.name, train.value, train.unit);
    let mut figures = Vec::new();
    if wanted(bench::TRAIN) {
        figures.push(train);
    }
    for use_cache in [true, false] {
        let name = if use_cache {
            bench::SAMPLE_KV_CACHE
        } else {
            bench::SAMPLE_NO_KV_CACHE
        };
        if wanted(name) {
            let f = bench::sample(&config, &model, use_cache)?;
            println!("{}: {:.1} {}", f.name, f.value, f.unit);
            figures.push(f);
        }
    }
    // Inference: the KV cache at 64/256/1024 positions (seeded random weights, a context
    // stretched to 1024) and an int8 vs f32 matmul.
    let inference = bench::InferenceSection::default();
    if wanted("kv_cache") {
        for f in bench::kv_cache(&config.model, &inference.kv_positions, &device)? {
            println!("{}: {:.1} {}", f.name, f.value, f.unit);
            figures.push(f);
        }
    }
    if wanted("int8_matmul") {
        for f in bench::int8_matmul(&inference, &device)? {
            println!("{}: {:.2} {}", f.name, f.value, f.unit);
            figures.push(f);
        }
    }
    // WebGPU kernels through native wgpu (built with `--features webgpu`, and an adapter:
    // lavapipe on a machine without a GPU) beside candle on the CPU at the same sizes.
    if wanted("gpu") {
        let mut gpu_figures = bench::cpu_matmul(&bench::MATMUL_SIZES, &device)?;
        gpu_figures.push(bench::cpu_generate(&config, &device)?);
        gpu_figures.extend(gpu_cases(&config)?);
        for f in &gpu_figures {
            println!("{}: {:.2} {}", f.name, f.value, f.unit);
        }
        figures.extend(gpu_figures);
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_vec_pretty(&figures)?)?;
    println!("wrote {}", out.display());
    Ok(())
}

/// The GPU cases, or none (saying why) without the feature or an adapter.
#[cfg(feature = "webgpu")]
fn gpu_cases(config: &BenchConfig) -> Result<Vec<bench::Figure>> {
    let gpu = match pollster::block_on(engine::gpu::Gpu::new()) {
        Ok(gpu) => gpu,
        Err(e) => {
            println!("gpu cases skipped: {e}");
            return Ok(Vec::new());
        }
    };
    let info = gpu.info();
    println!(
        "gpu: {} ({}, {}, {})",
        info.name, info.backend, info.device_type, info.driver
    );
    let mut figures = pollster::block_on(bench::gpu_matmul(&gpu, &bench::MATMUL_SIZES))?;
    figures.push(pollster::block_on(bench::gpu_generate(config, &gpu))?);
    Ok(figures)
}

#[cfg(not(feature = "webgpu"))]
fn gpu_cases(_: &BenchConfig) -> Result<Vec<bench::Figure>> {
    println!("gpu cases skipped: built without --features webgpu");
    Ok(Vec::new())
}
