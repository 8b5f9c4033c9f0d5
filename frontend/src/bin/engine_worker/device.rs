//! Where the worker computes: the device switch for sampling, and lesson E4's benchmark of
//! the CPU path against WebGPU.

use candle_core::{Device, Tensor};
use engine::sample::{Generator, SamplingConfig};
use frontend::worker::Event;
use frontend::worker::protocol::ComputeDevice;

use super::{model_at, now, post, yield_now};

pub async fn set_device(webgpu: bool) {
    let _ = webgpu;
    post(&Event::Device {
        active: ComputeDevice::Cpu,
        adapter: None,
        notice: None,
    });
}

/// Repeats `f` until about `budget_ms` have passed (at least twice) and returns the mean ms.
fn time_ms(budget_ms: f64, mut f: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    f()?; // warm-up: allocations, the first call's caches
    let start = now();
    let mut runs = 0;
    while runs < 2 || now() - start < budget_ms {
        f()?;
        runs += 1;
    }
    Ok((now() - start) / f64::from(runs))
}

fn cpu_matmul_gflops(n: usize) -> Result<f64, String> {
    let a = Tensor::randn(0f32, 1.0, (n, n), &Device::Cpu).map_err(|e| e.to_string())?;
    let b = Tensor::randn(0f32, 1.0, (n, n), &Device::Cpu).map_err(|e| e.to_string())?;
    let ms = time_ms(300.0, || {
        a.matmul(&b).map(|_| ()).map_err(|e| e.to_string())
    })?;
    Ok(2.0 * (n as f64).powi(3) / (ms / 1e3) / 1e9)
}

pub async fn gpu_bench(sizes: &[usize], model_url: &str, tokens: usize) -> Result<(), String> {
    if let Some(&n) = sizes.iter().find(|&&n| n == 0 || n > 4096) {
        return Err(format!("matmul size {n} is outside 1..=4096"));
    }
    let total = sizes.len() + 1;
    let mut done = 0;
    let step = |done: &mut usize| {
        *done += 1;
        post(&Event::Progress {
            what: "gpu bench".into(),
            done: *done,
            total,
        });
    };
    for &n in sizes {
        post(&Event::MatmulRate {
            device: ComputeDevice::Cpu,
            size: n,
            gflops: cpu_matmul_gflops(n)?,
        });
        step(&mut done);
        yield_now().await;
    }
    let (model, tokenizer) = model_at(model_url).await?;
    let prompt = tokenizer.encode("\n").map_err(|e| e.to_string())?;
    let tokens = tokens.clamp(1, model.config().block_size - prompt.len());
    let mut generator = Generator::new(&model, &prompt, SamplingConfig::greedy(), true)
        .map_err(|e| e.to_string())?;
    let start = now();
    for _ in 0..tokens {
        generator.next_token().map_err(|e| e.to_string())?;
    }
    let secs = (now() - start) / 1e3;
    post(&Event::GenerationRate {
        device: ComputeDevice::Cpu,
        tokens_per_sec: tokens as f64 / secs.max(1e-6),
        text: tokenizer
            .decode(generator.tokens())
            .map_err(|e| e.to_string())?,
    });
    step(&mut done);
    post(&Event::GpuBenchDone);
    Ok(())
}
