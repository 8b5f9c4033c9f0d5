//! GPU kernels for the engine: candle has no WebGPU backend, so the engine brings its own,
//! WGSL compute shaders driven through wgpu. In the browser they run on WebGPU; natively on
//! Vulkan (in tests, lavapipe: Vulkan on the CPU).
//!
//! [`Gpu`] holds the device and compiles each kernel once. [`GpuTensor`] is an f32 buffer on
//! the device with a shape (row-major, contiguous). Kernels record into one pending command
//! encoder; [`Gpu::read`] submits it and maps the result back, which is asynchronous in the
//! browser, so every call that returns numbers to the CPU is an `async fn`. Everything else
//! (uploading, recording kernels) is synchronous.
//!
//! Kernels: tiled matmul with either operand transposed ([`Gpu::matmul_t`]), bias add,
//! residual add, GELU, LayerNorm, softmax, embedding lookup, and causal attention over a KV
//! cache. [`GpuGpt`] runs the GPT-2 forward pass with them.

mod gpt;
mod roof;

pub use gpt::{GpuGenerator, GpuGpt, GpuKvCache, generate};
pub use roof::Roof;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use wgpu::util::DeviceExt;

use crate::{Error, Result};

/// The start of the error [`Gpu::new`] returns when there is no adapter at all (WebGPU
/// missing in the browser, no Vulkan driver natively), as opposed to one that failed.
pub const NO_ADAPTER: &str = "no GPU adapter";

/// The longest context [`Gpu::attention`] handles: one workgroup keeps a row of scores in
/// 8 KiB of workgroup memory.
pub const MAX_CONTEXT: usize = 2048;

/// Which adapter the engine got, for the page to show.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GpuInfo {
    /// e.g. "llvmpipe (LLVM 15.0.6, 256 bits)"; browsers may leave it empty.
    pub name: String,
    /// "vulkan", "metal", "dx12", "gl" or "browser_webgpu".
    pub backend: String,
    /// "discrete_gpu", "integrated_gpu", "virtual_gpu", "cpu" or "other".
    pub device_type: String,
    pub driver: String,
    /// The device's real limits (requested from the adapter, not WebGPU's defaults).
    pub max_buffer_size: u64,
    pub max_storage_buffer_binding_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroups_per_dimension: u32,
}

/// An f32 tensor in a GPU storage buffer, row-major and contiguous.
#[derive(Debug)]
pub struct GpuTensor {
    buffer: wgpu::Buffer,
    shape: Vec<usize>,
}

impl GpuTensor {
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes on the device.
    pub fn bytes(&self) -> usize {
        self.len() * 4
    }

    /// The shape as (rows, last dimension).
    fn rows_cols(&self) -> (usize, usize) {
        let cols = self.shape.last().copied().unwrap_or(1);
        (self.len() / cols.max(1), cols)
    }
}

/// The WGSL sources, one module per file, compiled once per device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Shader {
    Matmul,
    Elementwise,
    Norm,
    Embedding,
    Attention,
    Roof,
}

impl Shader {
    fn source(self) -> &'static str {
        match self {
            Shader::Matmul => include_str!("matmul.wgsl"),
            Shader::Elementwise => include_str!("elementwise.wgsl"),
            Shader::Norm => include_str!("norm.wgsl"),
            Shader::Embedding => include_str!("embedding.wgsl"),
            Shader::Attention => include_str!("attention.wgsl"),
            Shader::Roof => include_str!("roof.wgsl"),
        }
    }
}

/// Threads per workgroup of the element-wise kernels.
const ELEMENTWISE_WG: usize = 256;
/// Output tile of the matmul kernel (64 × 64 per workgroup).
const MATMUL_TILE: usize = 64;
/// Products with at most this many rows of A take the untiled `gemv` kernel.
const GEMV_ROWS: usize = 4;
/// Kernels recorded before the pending encoder is submitted anyway, so a long run of work
/// without a read does not hold unbounded command memory.
const MAX_PENDING: usize = 256;

struct Pending {
    encoder: Option<wgpu::CommandEncoder>,
    dispatches: usize,
}

struct Inner {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: GpuInfo,
    limits: wgpu::Limits,
    modules: Mutex<HashMap<Shader, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<(Shader, &'static str), wgpu::ComputePipeline>>,
    pending: Mutex<Pending>,
    /// The first error the device reported (validation, out of memory), until read.
    error: Arc<Mutex<Option<String>>>,
}

/// A GPU device, its queue and the compiled kernels. Cloning is cheap (a shared handle).
#[derive(Clone)]
pub struct Gpu {
    inner: Arc<Inner>,
}

fn gpu_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Gpu(format!("{what}: {e}"))
}

fn lower_debug(x: impl std::fmt::Debug) -> String {
    let s = format!("{x:?}");
    // CamelCase to snake_case: "DiscreteGpu" -> "discrete_gpu".
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if ch.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(ch.to_lowercase());
    }
    out
}

impl Gpu {
    /// The best adapter there is, with a device that has the adapter's real limits. In the
    /// browser that is WebGPU (in a page or a worker); natively Vulkan. Errors starting with
    /// [`NO_ADAPTER`] mean there is none; the caller then stays on the CPU.
    pub async fn new() -> Result<Self> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Gpu(format!("{NO_ADAPTER}: {e}")))?;
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("attention-workshop engine"),
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| gpu_err("the adapter refused a device", e))?;
        let error = Arc::new(Mutex::new(None::<String>));
        let sink = error.clone();
        // Natively wgpu panics on an uncaptured error by default; keep the first one and
        // return it from the next read instead.
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = Some(e.to_string());
            }
        }));
        let a = adapter.get_info();
        let info = GpuInfo {
            name: a.name.clone(),
            backend: lower_debug(a.backend).replace("browser_web_gpu", "browser_webgpu"),
            device_type: lower_debug(a.device_type),
            driver: format!("{} {}", a.driver, a.driver_info).trim().to_string(),
            max_buffer_size: limits.max_buffer_size,
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size as u64,
            max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
        };
        #[allow(clippy::arc_with_non_send_sync)] // wgpu's handles are !Send only on wasm
        let inner = Arc::new(Inner {
            device,
            queue,
            info,
            limits,
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
            pending: Mutex::new(Pending {
                encoder: None,
                dispatches: 0,
            }),
            error,
        });
        Ok(Self { inner })
    }

    pub fn info(&self) -> &GpuInfo {
        &self.inner.info
    }

    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    fn check_size(&self, bytes: usize, what: &str) -> Result<()> {
        let l = &self.inner.limits;
        let max = l.max_storage_buffer_binding_size.min(l.max_buffer_size);
        if bytes as u64 > max {
            return Err(Error::Gpu(format!(
                "{what} needs {bytes} bytes in one buffer; this device allows {max}"
            )));
        }
        Ok(())
    }

    fn storage_usage() -> wgpu::BufferUsages {
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST
    }

    /// Copies `data` to the device as a tensor of `shape`.
    pub fn upload(&self, data: &[f32], shape: &[usize]) -> Result<GpuTensor> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::config(
                "shape",
                format!("{shape:?} holds {n} elements but {} were given", data.len()),
            ));
        }
        self.check_size(n * 4, "a tensor")?;
        // A binding may not be empty: an empty tensor still gets one element of storage.
        let contents: &[u8] = if data.is_empty() {
            &[0; 4]
        } else {
            bytemuck::cast_slice(data)
        };
        let buffer = self
            .inner
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents,
                usage: Self::storage_usage(),
            });
        Ok(GpuTensor {
            buffer,
            shape: shape.to_vec(),
        })
    }

    /// A candle tensor (any dtype, any device) copied to the GPU as f32.
    pub fn upload_tensor(&self, t: &Tensor) -> Result<GpuTensor> {
        let data = t
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        self.upload(&data, t.dims())
    }

    /// A tensor of zeros (new buffers are zeroed).
    pub fn zeros(&self, shape: &[usize]) -> Result<GpuTensor> {
        let n: usize = shape.iter().product();
        self.check_size(n * 4, "a tensor")?;
        let buffer = self.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: (n.max(1) * 4) as u64,
            usage: Self::storage_usage(),
            mapped_at_creation: false,
        });
        Ok(GpuTensor {
            buffer,
            shape: shape.to_vec(),
        })
    }

    fn pipeline(&self, shader: Shader, entry: &'static str) -> wgpu::ComputePipeline {
        let mut pipelines = self
            .inner
            .pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(p) = pipelines.get(&(shader, entry)) {
            return p.clone();
        }
        let mut modules = self.inner.modules.lock().unwrap_or_else(|p| p.into_inner());
        let module = modules
            .entry(shader)
            .or_insert_with(|| {
                self.inner
                    .device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(entry),
                        source: wgpu::ShaderSource::Wgsl(shader.source().into()),
                    })
            })
            .clone();
        let pipeline =
            self.inner
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: None,
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                });
        pipelines.insert((shader, entry), pipeline.clone());
        pipeline
    }

    /// Records one kernel: `params` (u32 words; f32 as bits) at binding 0, `buffers` at
    /// bindings 1, 2, …, run over `groups` workgroups.
    fn dispatch(
        &self,
        shader: Shader,
        entry: &'static str,
        params: &[u32],
        buffers: &[&wgpu::Buffer],
        groups: (u32, u32, u32),
    ) -> Result<()> {
        let max = self.inner.limits.max_compute_workgroups_per_dimension;
        if groups.0 > max || groups.1 > max || groups.2 > max {
            return Err(Error::Gpu(format!(
                "{entry}: {groups:?} workgroups exceed this device's {max} per dimension"
            )));
        }
        if groups.0 == 0 || groups.1 == 0 || groups.2 == 0 {
            return Ok(()); // nothing to compute
        }
        let pipeline = self.pipeline(shader, entry);
        let mut words = params.to_vec();
        words.resize(params.len().div_ceil(4).max(1) * 4, 0); // uniform blocks are 16-byte multiples
        let device = &self.inner.device;
        let uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytemuck::cast_slice(&words),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        entries.extend(
            buffers
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry {
                    binding: i as u32 + 1,
                    resource: b.as_entire_binding(),
                }),
        );
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let mut pending = self.inner.pending.lock().unwrap_or_else(|p| p.into_inner());
        let encoder = pending
            .encoder
            .get_or_insert_with(|| device.create_command_encoder(&Default::default()));
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(groups.0, groups.1, groups.2);
        }
        pending.dispatches += 1;
        if pending.dispatches >= MAX_PENDING {
            let encoder = pending.encoder.take();
            pending.dispatches = 0;
            drop(pending);
            if let Some(e) = encoder {
                self.inner.queue.submit([e.finish()]);
            }
        }
        self.check_error()
    }

    /// A grid of workgroups for `n` independent items of `per_group` each: one dimension
    /// while it fits the device's limit, then a second.
    fn grid(&self, n: usize, per_group: usize) -> (u32, u32, u32) {
        let groups = n.div_ceil(per_group).max(1) as u64;
        let max = self
            .inner
            .limits
            .max_compute_workgroups_per_dimension
            .max(1) as u64;
        if groups <= max {
            (groups as u32, 1, 1)
        } else {
            (max as u32, groups.div_ceil(max) as u32, 1)
        }
    }

    fn check_error(&self) -> Result<()> {
        match self
            .inner
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            Some(e) => Err(Error::Gpu(e)),
            None => Ok(()),
        }
    }

    /// Submits every recorded kernel.
    pub fn flush(&self) -> Result<()> {
        let mut pending = self.inner.pending.lock().unwrap_or_else(|p| p.into_inner());
        let encoder = pending.encoder.take();
        pending.dispatches = 0;
        drop(pending);
        if let Some(e) = encoder {
            self.inner.queue.submit([e.finish()]);
        }
        self.check_error()
    }

    /// Waits until the device has finished all submitted work (for timing).
    pub async fn sync(&self) -> Result<()> {
        self.flush()?;
        let (tx, rx) = futures_channel::oneshot::channel();
        self.inner.queue.on_submitted_work_done(move || {
            let _ = tx.send(());
        });
        self.wait().await?;
        rx.await
            .map_err(|_| Error::Gpu("the device was lost before its work finished".into()))?;
        self.check_error()
    }

    /// Natively, drives the device until its callbacks have run; in the browser the event
    /// loop does that, and this does nothing.
    async fn wait(&self) -> Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| gpu_err("waiting for the device", e))?;
        Ok(())
    }

    /// The tensor's values on the CPU: submits the recorded work, copies the buffer to a
    /// mappable one and maps it (asynchronous in the browser).
    pub async fn read(&self, t: &GpuTensor) -> Result<Vec<f32>> {
        let n = t.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let size = (n * 4) as u64;
        let device = &self.inner.device;
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = {
            let mut pending = self.inner.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.dispatches = 0;
            pending
                .encoder
                .take()
                .unwrap_or_else(|| device.create_command_encoder(&Default::default()))
        };
        encoder.copy_buffer_to_buffer(&t.buffer, 0, &staging, 0, size);
        self.inner.queue.submit([encoder.finish()]);
        self.check_error()?;
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait().await?;
        rx.await
            .map_err(|_| Error::Gpu("the device was lost during a read".into()))?
            .map_err(|e| gpu_err("mapping a buffer for reading", e))?;
        let data = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| gpu_err("reading a mapped buffer", e))?;
            bytemuck::pod_collect_to_vec::<u8, f32>(&view)
        };
        staging.unmap();
        self.check_error()?;
        Ok(data)
    }

    /// [`Gpu::read`] as a candle tensor of the same shape on the CPU.
    pub async fn read_tensor(&self, t: &GpuTensor) -> Result<Tensor> {
        let data = self.read(t).await?;
        Ok(Tensor::from_vec(
            data,
            t.shape(),
            &candle_core::Device::Cpu,
        )?)
    }

    /// `A · B` for `a` (…, m, k) and `b` (k, n) or (…, k, n): see [`Gpu::matmul_t`].
    pub fn matmul(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        self.matmul_t(a, b, false, false)
    }

    /// `A · Bᵀ`, e.g. `x Wᵀ` for a weight stored (out, in) as candle's `Linear`.
    pub fn matmul_bt(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        self.matmul_t(a, b, false, true)
    }

    /// `op(A) · op(B)` where op transposes the last two dimensions when asked. `a` is 2-D or
    /// 3-D (a batch); `b` is 2-D (the same matrix for every batch entry) or 3-D with the
    /// same batch. The result is (…, m, n).
    pub fn matmul_t(
        &self,
        a: &GpuTensor,
        b: &GpuTensor,
        trans_a: bool,
        trans_b: bool,
    ) -> Result<GpuTensor> {
        let split = |t: &GpuTensor, name: &str| -> Result<(usize, usize, usize)> {
            match *t.shape() {
                [r, c] => Ok((1, r, c)),
                [batch, r, c] => Ok((batch, r, c)),
                ref s => Err(Error::config(
                    name,
                    format!("matmul takes 2-D or 3-D tensors, got shape {s:?}"),
                )),
            }
        };
        let (batch_a, ra, ca) = split(a, "a")?;
        let (batch_b, rb, cb) = split(b, "b")?;
        let (m, k) = if trans_a { (ca, ra) } else { (ra, ca) };
        let (kb, n) = if trans_b { (cb, rb) } else { (rb, cb) };
        if k != kb {
            return Err(Error::config(
                "b",
                format!(
                    "inner dimensions differ: {:?}{} · {:?}{}",
                    a.shape(),
                    if trans_a { "ᵀ" } else { "" },
                    b.shape(),
                    if trans_b { "ᵀ" } else { "" }
                ),
            ));
        }
        if b.shape().len() == 3 && batch_b != batch_a {
            return Err(Error::config(
                "b",
                format!("batch {batch_b} does not match a's batch {batch_a}"),
            ));
        }
        let mut shape = a.shape()[..a.shape().len() - 2].to_vec();
        shape.extend([m, n]);
        let out = self.zeros(&shape)?;
        let spec = MatmulSpec {
            m,
            n,
            k,
            trans_a,
            trans_b,
            a_off: 0,
            batch: batch_a,
            a_batch: m * k,
            b_batch: if b.shape().len() == 3 { k * n } else { 0 },
        };
        self.matmul_into(a, b, &out, &spec)?;
        Ok(out)
    }

    fn matmul_into(
        &self,
        a: &GpuTensor,
        b: &GpuTensor,
        c: &GpuTensor,
        s: &MatmulSpec,
    ) -> Result<()> {
        let words = [
            s.m,
            s.n,
            s.k,
            s.trans_a as usize,
            s.trans_b as usize,
            s.a_off,
            0,
            0,
            s.a_batch,
            s.b_batch,
            s.m * s.n,
            0,
        ]
        .map(|w| w as u32);
        let buffers = [&a.buffer, &b.buffer, &c.buffer];
        if s.m <= GEMV_ROWS {
            return self.dispatch(
                Shader::Matmul,
                "gemv",
                &words,
                &buffers,
                (s.n.div_ceil(64) as u32, s.m as u32, s.batch as u32),
            );
        }
        self.dispatch(
            Shader::Matmul,
            "main",
            &words,
            &buffers,
            (
                s.n.div_ceil(MATMUL_TILE) as u32,
                s.m.div_ceil(MATMUL_TILE) as u32,
                s.batch as u32,
            ),
        )
    }

    fn elementwise(
        &self,
        entry: &'static str,
        x: &mut GpuTensor,
        y: Option<&GpuTensor>,
        cols: usize,
    ) -> Result<()> {
        let n = x.len();
        let mut buffers = vec![&x.buffer];
        buffers.extend(y.map(|y| &y.buffer));
        self.dispatch(
            Shader::Elementwise,
            entry,
            &[n as u32, cols as u32],
            &buffers,
            self.grid(n, ELEMENTWISE_WG),
        )
    }

    /// `x[…, j] += bias[j]`, in place.
    pub fn bias_add(&self, x: &mut GpuTensor, bias: &GpuTensor) -> Result<()> {
        let (_, cols) = x.rows_cols();
        if bias.len() != cols {
            return Err(Error::config(
                "bias",
                format!("{} values for a last dimension of {cols}", bias.len()),
            ));
        }
        self.elementwise("bias_add", x, Some(bias), cols)
    }

    /// `x += y` element-wise (same shape), in place.
    pub fn add(&self, x: &mut GpuTensor, y: &GpuTensor) -> Result<()> {
        if x.shape() != y.shape() {
            return Err(Error::config(
                "y",
                format!("shape {:?} differs from {:?}", y.shape(), x.shape()),
            ));
        }
        self.elementwise("add", x, Some(y), 1)
    }

    /// The exact (erf) GELU, in place.
    pub fn gelu(&self, x: &mut GpuTensor) -> Result<()> {
        self.elementwise("gelu", x, None, 1)
    }

    /// LayerNorm over the last dimension: `(x - mean) / sqrt(var + eps) · weight + bias`.
    pub fn layer_norm(
        &self,
        x: &GpuTensor,
        weight: &GpuTensor,
        bias: Option<&GpuTensor>,
        eps: f32,
    ) -> Result<GpuTensor> {
        let (rows, cols) = x.rows_cols();
        for (name, t) in [("weight", Some(weight)), ("bias", bias)] {
            if let Some(t) = t
                && t.len() != cols
            {
                return Err(Error::config(
                    name,
                    format!("{} values for a last dimension of {cols}", t.len()),
                ));
            }
        }
        let out = self.zeros(x.shape())?;
        self.dispatch(
            Shader::Norm,
            "layer_norm",
            &[
                rows as u32,
                cols as u32,
                bias.is_some() as u32,
                eps.to_bits(),
            ],
            &[
                &x.buffer,
                &weight.buffer,
                &bias.unwrap_or(weight).buffer,
                &out.buffer,
            ],
            self.grid(rows, 1),
        )?;
        Ok(out)
    }

    /// Softmax over the last dimension, in place.
    pub fn softmax(&self, x: &mut GpuTensor) -> Result<()> {
        let (rows, cols) = x.rows_cols();
        self.dispatch(
            Shader::Norm,
            "softmax",
            &[rows as u32, cols as u32, 0, 0],
            &[&x.buffer],
            self.grid(rows, 1),
        )
    }

    /// Rows of `table` (vocab, dim) picked by `ids`, `(ids.len(), dim)`; with `pos =
    /// Some((wpe, offset))` the rows `offset..offset + ids.len()` of `wpe` are added (GPT-2's
    /// token plus learned position embedding).
    pub fn embedding(
        &self,
        table: &GpuTensor,
        ids: &[u32],
        pos: Option<(&GpuTensor, usize)>,
    ) -> Result<GpuTensor> {
        let [vocab, dim] = *table.shape() else {
            return Err(Error::config(
                "table",
                format!("an embedding table is 2-D, got {:?}", table.shape()),
            ));
        };
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::config(
                "ids",
                format!("token id {bad} is outside the table's {vocab} rows"),
            ));
        }
        if let Some((wpe, offset)) = pos
            && (wpe.shape().len() != 2
                || wpe.shape()[1] != dim
                || offset + ids.len() > wpe.shape()[0])
        {
            return Err(Error::config(
                "block_size",
                format!(
                    "positions {offset}..{} do not fit a position table of shape {:?}",
                    offset + ids.len(),
                    wpe.shape()
                ),
            ));
        }
        let out = self.zeros(&[ids.len(), dim])?;
        let ids_buf = self
            .inner
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("ids"),
                contents: if ids.is_empty() {
                    &[0; 4]
                } else {
                    bytemuck::cast_slice(ids)
                },
                usage: wgpu::BufferUsages::STORAGE,
            });
        let (pos_table, offset) = pos.unwrap_or((table, 0));
        self.dispatch(
            Shader::Embedding,
            "main",
            &[
                ids.len() as u32,
                dim as u32,
                offset as u32,
                pos.is_some() as u32,
            ],
            &[&table.buffer, &ids_buf, &pos_table.buffer, &out.buffer],
            self.grid(ids.len() * dim, ELEMENTWISE_WG),
        )?;
        Ok(out)
    }

    /// Causal multi-head attention of new tokens over a KV cache. `qkv` is the fused
    /// projection of `t` new tokens, (t, 3c): queries, keys, values, each split into
    /// `cache.n_head` heads. Their keys and values are appended to the cache at positions
    /// `cache.len()..cache.len() + t`; each new token then attends to every position up to
    /// its own. Returns (t, c), heads side by side, before the output projection.
    pub fn attention(&self, qkv: &GpuTensor, cache: &mut KvLayer) -> Result<GpuTensor> {
        let [t, c3] = *qkv.shape() else {
            return Err(Error::config(
                "qkv",
                format!("qkv is (t, 3c), got {:?}", qkv.shape()),
            ));
        };
        let c = cache.n_head * cache.head_dim;
        if c3 != 3 * c {
            return Err(Error::config(
                "qkv",
                format!("width {c3} is not 3 × {c} (n_head × head_dim of the cache)"),
            ));
        }
        let offset = cache.len;
        if offset + t > cache.max_len {
            return Err(Error::config(
                "block_size",
                format!(
                    "{} positions do not fit a cache of {}",
                    offset + t,
                    cache.max_len
                ),
            ));
        }
        let params = [
            t as u32,
            offset as u32,
            cache.n_head as u32,
            cache.head_dim as u32,
            cache.max_len as u32,
            c as u32,
            (1.0 / (cache.head_dim as f32).sqrt()).to_bits(),
            0,
        ];
        self.dispatch(
            Shader::Attention,
            "kv_append",
            &params,
            &[&qkv.buffer, &cache.k.buffer, &cache.v.buffer],
            self.grid(t * c, ELEMENTWISE_WG),
        )?;
        cache.len += t;
        let out = self.zeros(&[t, c])?;
        self.dispatch(
            Shader::Attention,
            "attend",
            &params,
            &[&qkv.buffer, &cache.k.buffer, &cache.v.buffer, &out.buffer],
            (t as u32, cache.n_head as u32, 1),
        )?;
        Ok(out)
    }

    /// An empty KV cache for one attention layer: keys and values of up to `max_len`
    /// positions, each (n_head, max_len, head_dim).
    pub fn kv_layer(&self, n_head: usize, head_dim: usize, max_len: usize) -> Result<KvLayer> {
        if max_len > MAX_CONTEXT {
            return Err(Error::config(
                "block_size",
                format!(
                    "the GPU attention kernel holds at most {MAX_CONTEXT} positions, not {max_len}"
                ),
            ));
        }
        let shape = [n_head, max_len, head_dim];
        Ok(KvLayer {
            k: self.zeros(&shape)?,
            v: self.zeros(&shape)?,
            n_head,
            head_dim,
            max_len,
            len: 0,
        })
    }
}

/// What [`Gpu::matmul_into`] computes: `c[b] = op(a[b]) · op(b[b])`, with `a` starting at
/// element `a_off`.
struct MatmulSpec {
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    a_off: usize,
    batch: usize,
    a_batch: usize,
    b_batch: usize,
}

/// Keys and values of one attention layer on the GPU.
#[derive(Debug)]
pub struct KvLayer {
    k: GpuTensor,
    v: GpuTensor,
    n_head: usize,
    head_dim: usize,
    max_len: usize,
    len: usize,
}

impl KvLayer {
    /// Positions cached.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every position (the buffers stay allocated).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Bytes of keys and values actually cached (as the CPU cache counts them).
    pub fn bytes(&self) -> usize {
        2 * self.n_head * self.head_dim * self.len * 4
    }
}
