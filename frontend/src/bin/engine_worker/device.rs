//! Where the worker computes: the device switch for sampling (WebGPU when the student wants
//! it and the browser has an adapter, else the CPU), and lesson E4's benchmark of the two.

use std::cell::RefCell;
use std::rc::Rc;

use candle_core::Device;
use engine::checkpoint::Checkpoint;
use engine::gpu::{Gpu, GpuGenerator, GpuGpt};
use engine::sample::{Generator, SamplingConfig};
use engine::tokenizer::Tokenizer;
use frontend::worker::Event;
use frontend::worker::protocol::ComputeDevice;

use super::{SLICE_MS, load_checkpoint, model_at, now, post, yield_now};

#[derive(Default)]
struct GpuState {
    /// The student's switch; sampling stays on the CPU when off.
    cpu_only: bool,
    /// The device once asked for: `Err` says why there is none.
    gpu: Option<Result<Gpu, String>>,
    /// The checkpoint at a URL on the GPU, for sampling the shipped model.
    model: Option<(String, Rc<GpuGpt>)>,
}

thread_local! {
    static GPU: RefCell<GpuState> = RefCell::new(GpuState::default());
}

/// The WebGPU device, asked for on first use (the adapter's real limits are requested).
async fn webgpu() -> Result<Gpu, String> {
    if let Some(known) = GPU.with(|g| g.borrow().gpu.clone()) {
        return known;
    }
    let gpu = Gpu::new().await.map_err(|e| {
        if e.to_string().contains(engine::gpu::NO_ADAPTER) {
            "This browser offers no WebGPU adapter, so everything runs on the CPU.".to_string()
        } else {
            format!("WebGPU failed to start ({e}), so everything runs on the CPU.")
        }
    });
    GPU.with(|g| g.borrow_mut().gpu = Some(gpu.clone()));
    gpu
}

/// Tells the page where sampling runs now.
async fn report() {
    let cpu_only = GPU.with(|g| g.borrow().cpu_only);
    let event = match webgpu().await {
        Ok(gpu) => Event::Device {
            active: if cpu_only {
                ComputeDevice::Cpu
            } else {
                ComputeDevice::Webgpu
            },
            adapter: Some(adapter_name(&gpu)),
            notice: None,
        },
        Err(why) => Event::Device {
            active: ComputeDevice::Cpu,
            adapter: None,
            notice: (!cpu_only).then_some(why),
        },
    };
    post(&event);
}

fn adapter_name(gpu: &Gpu) -> String {
    let info = gpu.info();
    // Browsers may hide the adapter's name.
    if info.name.is_empty() {
        format!("{} adapter", info.device_type.replace('_', " "))
    } else {
        info.name.clone()
    }
}

pub async fn set_device(webgpu: bool) {
    GPU.with(|g| g.borrow_mut().cpu_only = !webgpu);
    report().await;
}

/// The GPU sampling should run on, or `None` for the CPU.
async fn sampling_gpu() -> Option<Gpu> {
    if GPU.with(|g| g.borrow().cpu_only) {
        return None;
    }
    webgpu().await.ok()
}

/// What to sample: the checkpoint at a URL (the worker's loaded model) or a snapshot of the
/// run training in this tab.
pub enum Source {
    Url(String),
    Snapshot(Box<Checkpoint>),
}

/// Generates on WebGPU when it is in use and the model has a GPU path; `Ok(false)` means
/// the caller should generate on the CPU. A failure on the GPU is reported as a notice and
/// the CPU takes over: the student still gets text.
pub async fn generate_on_gpu(
    trained: bool,
    source: Source,
    tokenizer: &Tokenizer,
    prompt: &[u32],
    max_new_tokens: usize,
    config: SamplingConfig,
    still_wanted: impl Fn() -> bool,
) -> Result<bool, String> {
    let Some(gpu) = sampling_gpu().await else {
        return Ok(false);
    };
    let model = match source {
        Source::Url(url) => gpu_model(&gpu, &url).await,
        Source::Snapshot(ckpt) => GpuGpt::from_checkpoint(&gpu, &ckpt)
            .map(Rc::new)
            .map_err(|e| e.to_string()),
    };
    let result = match model {
        Ok(model) => {
            stream(
                &model,
                trained,
                tokenizer,
                prompt,
                max_new_tokens,
                config,
                still_wanted,
            )
            .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(true),
        Err(e) => {
            post(&Event::Device {
                active: ComputeDevice::Cpu,
                adapter: Some(adapter_name(&gpu)),
                notice: Some(format!(
                    "This text was generated on the CPU: on WebGPU, {e}"
                )),
            });
            Ok(false)
        }
    }
}

async fn gpu_model(gpu: &Gpu, url: &str) -> Result<Rc<GpuGpt>, String> {
    let cached = GPU.with(|g| {
        g.borrow()
            .model
            .as_ref()
            .filter(|(u, _)| u == url)
            .map(|(_, m)| m.clone())
    });
    if let Some(model) = cached {
        return Ok(model);
    }
    let ckpt = load_checkpoint(url).await?;
    let model = Rc::new(GpuGpt::from_checkpoint(gpu, &ckpt).map_err(|e| e.to_string())?);
    GPU.with(|g| g.borrow_mut().model = Some((url.to_string(), model.clone())));
    Ok(model)
}

/// The GPU twin of the worker's CPU generation loop: tokens in slices, text after each.
async fn stream(
    model: &GpuGpt,
    trained: bool,
    tokenizer: &Tokenizer,
    prompt: &[u32],
    max_new_tokens: usize,
    config: SamplingConfig,
    still_wanted: impl Fn() -> bool,
) -> Result<(), String> {
    let mut generator = GpuGenerator::new(model, prompt, config).map_err(|e| e.to_string())?;
    let t0 = now();
    let mut made = 0;
    while made < max_new_tokens {
        let t_slice = now();
        while made < max_new_tokens && now() - t_slice < SLICE_MS {
            generator.next_token().await.map_err(|e| e.to_string())?;
            made += 1;
        }
        post(&Event::Generated {
            trained,
            text: tokenizer
                .decode(generator.tokens())
                .map_err(|e| e.to_string())?,
            done: made >= max_new_tokens,
            tokens_per_sec: made as f64 / ((now() - t0) / 1000.0).max(1e-3),
            device: ComputeDevice::Webgpu,
        });
        if !still_wanted() {
            return Ok(());
        }
    }
    Ok(())
}

/// Lesson E4: the adapter's measured roof, matmul GFLOP/s at each size on both devices, and
/// greedy generation of the model at `model_url` on both (the texts must agree).
pub async fn gpu_bench(sizes: &[usize], model_url: &str, tokens: usize) -> Result<(), String> {
    if let Some(&n) = sizes.iter().find(|&&n| n == 0 || n > 4096) {
        return Err(format!("matmul size {n} is outside 1..=4096"));
    }
    report().await;
    let gpu = webgpu().await.ok();
    let per_device = sizes.len() + 1;
    let total = per_device * if gpu.is_some() { 2 } else { 1 } + usize::from(gpu.is_some());
    let mut done = 0;
    let mut tick = move || {
        done += 1;
        post(&Event::Progress {
            what: "gpu bench".into(),
            done,
            total,
        });
    };
    let gpu_err = |e: engine::Error| format!("on WebGPU: {e}");
    if let Some(gpu) = &gpu {
        let roof = gpu.measure_roof(300.0).await.map_err(gpu_err)?;
        post(&Event::GpuRoof {
            peak_gflops: roof.peak_flops / 1e9,
            bandwidth_gbs: roof.bandwidth / 1e9,
        });
        tick();
    }
    for &n in sizes {
        yield_now().await;
        let cpu = engine::bench::cpu_matmul(&[n], &Device::Cpu).map_err(|e| e.to_string())?;
        post(&Event::MatmulRate {
            device: ComputeDevice::Cpu,
            size: n,
            gflops: cpu[0].value,
        });
        tick();
        if let Some(gpu) = &gpu {
            let figures = engine::bench::gpu_matmul(gpu, &[n])
                .await
                .map_err(gpu_err)?;
            post(&Event::MatmulRate {
                device: ComputeDevice::Webgpu,
                size: n,
                gflops: figures[0].value,
            });
            tick();
        }
    }

    let (model, tokenizer) = model_at(model_url).await?;
    let prompt = tokenizer.encode("\n").map_err(|e| e.to_string())?;
    let tokens = tokens.clamp(1, model.config().block_size - prompt.len());
    let decode = |ids: &[u32]| tokenizer.decode(ids).map_err(|e| e.to_string());
    let mut cpu = Generator::new(&model, &prompt, SamplingConfig::greedy(), true)
        .map_err(|e| e.to_string())?;
    cpu.next_token().map_err(|e| e.to_string())?; // the prompt, untimed as on the GPU
    let start = now();
    for _ in 1..tokens {
        cpu.next_token().map_err(|e| e.to_string())?;
    }
    post(&Event::GenerationRate {
        device: ComputeDevice::Cpu,
        tokens_per_sec: (tokens - 1).max(1) as f64 / ((now() - start) / 1e3).max(1e-6),
        text: decode(cpu.tokens())?,
    });
    tick();
    if let Some(gpu) = &gpu {
        let model = gpu_model(gpu, model_url).await?;
        let mut generator = GpuGenerator::new(&model, &prompt, SamplingConfig::greedy())
            .map_err(|e| e.to_string())?;
        generator.next_token().await.map_err(gpu_err)?; // pipelines compile on the first token
        let start = now();
        for _ in 1..tokens {
            generator.next_token().await.map_err(gpu_err)?;
        }
        post(&Event::GenerationRate {
            device: ComputeDevice::Webgpu,
            tokens_per_sec: (tokens - 1).max(1) as f64 / ((now() - start) / 1e3).max(1e-6),
            text: decode(generator.tokens())?,
        });
        tick();
    }
    post(&Event::GpuBenchDone);
    Ok(())
}
