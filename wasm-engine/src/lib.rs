//! The engine of Attention Workshop: tokenizers, models, training and sampling on candle.
//!
//! It knows nothing of HTTP or the DOM: the browser's worker, the native runner and the
//! tests all drive the same code. Modules are by domain.

pub mod bench;
pub mod checkpoint;
pub mod data;
pub mod device;
pub mod error;
#[cfg(feature = "webgpu")]
pub mod gpu;
pub mod grade;
pub mod model;
pub mod protocol;
pub mod quant;
pub mod sample;
pub mod tokenizer;
pub mod train;

pub use error::{Error, Result};
