//! The engine worker: the messages (defined once, used by both sides) and the page's client.
//! The worker itself is `src/bin/engine_worker.rs`.

pub mod client;
pub mod protocol;

pub use client::EngineClient;
pub use protocol::{Event, Request};
