//! The engine's one error type. Every failure on input the engine did not make is one of
//! these variants, never a panic.

/// What went wrong, with enough detail to fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range or inconsistent with another.
    #[error("invalid config: {field}: {message}")]
    Config { field: String, message: String },
    /// The text given for training or tokenizing is unusable.
    #[error("corpus: {0}")]
    Corpus(String),
    /// A tokenizer could not be trained, loaded or applied.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A checkpoint is truncated, corrupt or does not match its config.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The GPU (WebGPU in the browser, wgpu natively) is missing or failed; the caller falls
    /// back to the CPU path.
    #[error("gpu: {0}")]
    Gpu(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
