//! Live widgets, one file each. A lesson names a widget in a ```` ```widget NAME ```` block;
//! `build.rs` checks its TOML against [`config::WidgetConfig`], and [`Widget`] mounts it.

mod architectures;
mod attention_heatmap;
mod bigram_counts;
mod block_compare;
mod bpe_steps;
pub mod config;
mod gpu_bench;
mod kv_cache_bench;
mod position_explorer;
mod quant_compare;
mod sample_shipped;
mod sampling_playground;
mod tokenizer_playground;
mod train_gpt;

use leptos::prelude::*;

use config::WidgetConfig;

/// Mounts a widget from its config as `build.rs` wrote it (JSON of a [`WidgetConfig`]).
#[component]
pub fn Widget(name: &'static str, config: &'static str) -> impl IntoView {
    let config: WidgetConfig =
        serde_json::from_str(config).expect("build.rs wrote and read back every widget config");
    let body = match config {
        WidgetConfig::TrainGpt(config) => view! { <train_gpt::TrainGpt config /> }.into_any(),
        WidgetConfig::SampleShipped(config) => {
            view! { <sample_shipped::SampleShipped config /> }.into_any()
        }
        WidgetConfig::BigramCounts(config) => {
            view! { <bigram_counts::BigramCounts config /> }.into_any()
        }
        WidgetConfig::BpeSteps(config) => view! { <bpe_steps::BpeSteps config /> }.into_any(),
        WidgetConfig::TokenizerPlayground(config) => {
            view! { <tokenizer_playground::TokenizerPlayground config /> }.into_any()
        }
        WidgetConfig::AttentionHeatmap(config) => {
            view! { <attention_heatmap::AttentionHeatmap config /> }.into_any()
        }
        WidgetConfig::PositionExplorer(config) => {
            view! { <position_explorer::PositionExplorer config /> }.into_any()
        }
        WidgetConfig::BlockCompare(config) => {
            view! { <block_compare::BlockCompare config /> }.into_any()
        }
        WidgetConfig::KvCacheBench(config) => {
            view! { <kv_cache_bench::KvCacheBench config /> }.into_any()
        }
        WidgetConfig::SamplingPlayground(config) => {
            view! { <sampling_playground::SamplingPlayground config /> }.into_any()
        }
        WidgetConfig::Architectures(config) => {
            view! { <architectures::Architectures config /> }.into_any()
        }
        WidgetConfig::GpuBench(config) => view! { <gpu_bench::GpuBench config /> }.into_any(),
        WidgetConfig::QuantCompare(config) => {
            view! { <quant_compare::QuantCompare config /> }.into_any()
        }
        WidgetConfig::Runner(config) => {
            view! { <crate::runner::RunnerConsole config /> }.into_any()
        }
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
