//! Live widgets, one file each. A lesson names a widget in a ```` ```widget NAME ```` block;
//! `build.rs` checks the name and keys, and [`Widget`] mounts it with its TOML as JSON.

mod architectures;
mod attention_heatmap;
mod bigram_counts;
mod block_compare;
mod bpe_steps;
mod gpu_bench;
mod kv_cache_bench;
mod position_explorer;
mod quant_compare;
mod sample_shipped;
mod sampling_playground;
mod tokenizer_playground;
mod train_gpt;

use leptos::prelude::*;
use serde::de::DeserializeOwned;

/// Parses a widget's config; build.rs already checked the keys, so this fails only on a type.
fn config<T: DeserializeOwned + Default>(json: &str) -> T {
    serde_json::from_str(json).unwrap_or_default()
}

#[component]
pub fn Widget(name: &'static str, config: &'static str) -> impl IntoView {
    let body = match name {
        "train-gpt" => view! { <train_gpt::TrainGpt config=self::config(config) /> }.into_any(),
        "sample-shipped" => {
            view! { <sample_shipped::SampleShipped config=self::config(config) /> }.into_any()
        }
        "bigram-counts" => {
            view! { <bigram_counts::BigramCounts config=self::config(config) /> }.into_any()
        }
        "bpe-steps" => view! { <bpe_steps::BpeSteps config=self::config(config) /> }.into_any(),
        "tokenizer-playground" => view! {
            <tokenizer_playground::TokenizerPlayground config=self::config(config) />
        }
        .into_any(),
        "attention-heatmap" => view! {
            <attention_heatmap::AttentionHeatmap config=self::config(config) />
        }
        .into_any(),
        "position-explorer" => view! {
            <position_explorer::PositionExplorer config=self::config(config) />
        }
        .into_any(),
        "block-compare" => {
            view! { <block_compare::BlockCompare config=self::config(config) /> }.into_any()
        }
        "kv-cache-bench" => {
            view! { <kv_cache_bench::KvCacheBench config=self::config(config) /> }.into_any()
        }
        "sampling-playground" => view! {
            <sampling_playground::SamplingPlayground config=self::config(config) />
        }
        .into_any(),
        "architectures" => {
            view! { <architectures::Architectures config=self::config(config) /> }.into_any()
        }
        "gpu-bench" => view! { <gpu_bench::GpuBench config=self::config(config) /> }.into_any(),
        "quant-compare" => {
            view! { <quant_compare::QuantCompare config=self::config(config) /> }.into_any()
        }
        "runner" => {
            view! { <crate::runner::RunnerConsole config=self::config(config) /> }.into_any()
        }
        other => view! { <p class="problem">{format!("unknown widget {other}")}</p> }.into_any(),
    };
    view! { <div class="widget" data-widget=name>{body}</div> }
}

/// `n` with thin-space thousands separators.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}
