//! Which candle device the engine computes on.

use candle_core::Device;

/// The first CUDA GPU when the engine is built with the `cuda` feature and one is present,
/// else the CPU (always the CPU in the browser).
pub fn best() -> Device {
    #[cfg(feature = "cuda")]
    if let Ok(device) = Device::new_cuda(0) {
        return device;
    }
    Device::Cpu
}

/// "cuda" or "cpu", for logs and job records.
pub fn name(device: &Device) -> &'static str {
    match device {
        Device::Cpu => "cpu",
        Device::Cuda(_) => "cuda",
        Device::Metal(_) => "metal",
    }
}
