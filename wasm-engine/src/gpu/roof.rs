//! The roofline of this device, measured rather than looked up: the bandwidth of a copy
//! kernel (the slope) and the rate of a kernel of independent multiply-add chains (the flat
//! roof). Lesson E4 draws the engine's matmul under it.

use serde::{Deserialize, Serialize};
use web_time::Instant;

use super::{Gpu, Shader};
use crate::{Error, Result};

/// The two ceilings, as measured.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Roof {
    /// FLOP/s of the multiply-add kernel.
    pub peak_flops: f64,
    /// Bytes/s read plus written by the copy kernel.
    pub bandwidth: f64,
}

impl Roof {
    /// The intensity (FLOP/byte) above which a kernel can be compute-bound.
    pub fn ridge(&self) -> f64 {
        self.peak_flops / self.bandwidth
    }

    /// `min(peak, intensity × bandwidth)`.
    pub fn attainable(&self, intensity: f64) -> f64 {
        self.peak_flops.min(intensity * self.bandwidth)
    }
}

/// vec4s copied: 64 MiB read and 64 MiB written, past any cache, capped by the device.
const COPY_VEC4S: usize = 4 << 20;
/// Threads of the multiply-add kernel, and iterations of each (32 FLOPs per iteration).
const FMA_THREADS: usize = 1 << 16;
const FMA_ITERATIONS: u32 = 512;
const FLOPS_PER_ITERATION: f64 = 32.0;

impl Gpu {
    /// Times each kernel until `budget_ms` have passed (at least 3 runs, after a warm-up).
    pub async fn measure_roof(&self, budget_ms: f64) -> Result<Roof> {
        let l = self.limits();
        let max_bytes = l.max_storage_buffer_binding_size.min(l.max_buffer_size) as usize;
        let vec4s = COPY_VEC4S.min(max_bytes / 16);
        let src = self.zeros(&[vec4s * 4])?;
        let dst = self.zeros(&[vec4s * 4])?;
        let groups = self.grid(vec4s, 256);
        let copy_secs = self
            .time_kernel(budget_ms, || {
                self.dispatch(
                    Shader::Roof,
                    "copy",
                    &[vec4s as u32, 0],
                    &[&src.buffer, &dst.buffer],
                    groups,
                )
            })
            .await?;
        let fma_out = self.zeros(&[FMA_THREADS * 4])?;
        let groups = self.grid(FMA_THREADS, 256);
        let fma_secs = self
            .time_kernel(budget_ms, || {
                self.dispatch(
                    Shader::Roof,
                    "multiply_add",
                    &[FMA_THREADS as u32, FMA_ITERATIONS],
                    &[&src.buffer, &fma_out.buffer],
                    groups,
                )
            })
            .await?;
        let flops = FMA_THREADS as f64 * f64::from(FMA_ITERATIONS) * FLOPS_PER_ITERATION;
        Ok(Roof {
            peak_flops: flops / fma_secs,
            bandwidth: (2 * 16 * vec4s) as f64 / copy_secs,
        })
    }

    /// Seconds per run of the kernels `record` records, waiting for the device each time.
    async fn time_kernel(&self, budget_ms: f64, record: impl Fn() -> Result<()>) -> Result<f64> {
        record()?;
        self.sync().await?;
        let start = Instant::now();
        let mut runs = 0u32;
        while runs < 3 || start.elapsed().as_secs_f64() * 1e3 < budget_ms {
            record()?;
            self.sync().await?;
            runs += 1;
        }
        let secs = start.elapsed().as_secs_f64() / f64::from(runs);
        if secs > 0.0 {
            Ok(secs)
        } else {
            Err(Error::Gpu("the timer did not advance".into()))
        }
    }
}
