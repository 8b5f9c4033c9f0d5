//! Lesson E4's benchmark: the engine's WebGPU kernels against its CPU path in this tab.
//! Matmul GFLOP/s at each size, drawn at the size's arithmetic intensity under the roofline
//! measured on the adapter, and generation tokens/s of the shipped model on both devices.

use leptos::prelude::*;

use super::config::GpuBenchConfig;
use crate::worker::protocol::ComputeDevice;
use crate::worker::{EngineClient, Event, Request};

/// The arithmetic intensity of an fp32 `n × n` matmul at best: 2n³ FLOPs over 3n² values of
/// 4 bytes (the lesson's formula).
fn intensity(n: usize) -> f64 {
    n as f64 / 6.0
}

#[derive(Clone, Default)]
struct Results {
    adapter: Option<String>,
    notice: Option<String>,
    roof: Option<(f64, f64)>,
    /// `(device, size, GFLOP/s)` in the order measured.
    matmul: Vec<(ComputeDevice, usize, f64)>,
    generation: Vec<(ComputeDevice, f64, String)>,
}

impl Results {
    fn rate(&self, device: ComputeDevice, size: usize) -> Option<f64> {
        self.matmul
            .iter()
            .find(|(d, s, _)| *d == device && *s == size)
            .map(|r| r.2)
    }
}

#[component]
pub fn GpuBench(config: GpuBenchConfig) -> impl IntoView {
    let running = RwSignal::new(false);
    let progress = RwSignal::new((0usize, 1usize));
    let problem = RwSignal::new(None::<String>);
    let results = RwSignal::new(Results::default());
    let client = EngineClient::get();
    let subscription = client.as_ref().ok().map(|client| {
        client.subscribe(move |ev| match ev {
            Event::Device {
                adapter, notice, ..
            } => results.update(|r| {
                r.adapter = adapter.clone();
                r.notice = notice.clone();
            }),
            Event::GpuRoof {
                peak_gflops,
                bandwidth_gbs,
            } => results.update(|r| r.roof = Some((*peak_gflops, *bandwidth_gbs))),
            Event::MatmulRate {
                device,
                size,
                gflops,
            } => results.update(|r| r.matmul.push((*device, *size, *gflops))),
            Event::GenerationRate {
                device,
                tokens_per_sec,
                text,
            } => results.update(|r| r.generation.push((*device, *tokens_per_sec, text.clone()))),
            Event::Progress { what, done, total } if what == "gpu bench" => {
                progress.set((*done, *total));
            }
            Event::GpuBenchDone => running.set(false),
            Event::Error { what, message } if what == "gpu bench" => {
                running.set(false);
                problem.set(Some(message.clone()));
            }
            _ => {}
        })
    });
    StoredValue::new_local(subscription);
    let table_sizes = config.sizes.clone();
    let run = move |_| {
        if let Ok(client) = EngineClient::get() {
            running.set(true);
            problem.set(None);
            results.set(Results::default());
            progress.set((0, 1));
            client.send(&Request::GpuBench {
                sizes: config.sizes.clone(),
                model: config.model.clone(),
                tokens: config.tokens,
            });
        }
    };
    view! {
        <div class="gpu-bench" data-testid="gpu-bench">
            <p class="widget-title">"WebGPU against the CPU, in this tab"</p>
            <div class="controls">
                <button
                    class="primary"
                    data-testid="gpu-run"
                    disabled=move || running.get()
                    on:click=run
                >
                    {move || if running.get() { "Measuring…" } else { "Run the benchmark" }}
                </button>
                {move || {
                    running
                        .get()
                        .then(|| {
                            let (done, total) = progress.get();
                            view! {
                                <progress max=total.max(1) value=done></progress>
                                <span class="stat">{format!("{done} of {total}")}</span>
                            }
                        })
                }}
            </div>
            {move || problem.get().map(|p| view! { <p class="problem">{p}</p> })}
            {move || {
                results
                    .with(|r| {
                        r.adapter
                            .clone()
                            .map(|a| {
                                view! {
                                    <p class="stat" data-testid="gpu-adapter">
                                        {format!("WebGPU adapter: {a}")}
                                    </p>
                                }
                                    .into_any()
                            })
                            .or_else(|| {
                                r.notice
                                    .clone()
                                    .map(|n| {
                                        view! {
                                            <p class="notice" data-testid="gpu-notice">
                                                {format!("{n} The CPU figures are measured alone.")}
                                            </p>
                                        }
                                            .into_any()
                                    })
                            })
                    })
            }}
            {move || {
                results
                    .with(|r| r.roof)
                    .map(|(peak, bw)| {
                        view! {
                            <p class="stat" data-testid="gpu-roof">
                                {format!(
                                    "Measured roof: {peak:.1} GFLOP/s of multiply-adds, {bw:.1} GB/s copy bandwidth, ridge at {:.1} FLOP/byte.",
                                    peak / bw,
                                )}
                            </p>
                        }
                    })
            }}
            {move || {
                let r = results.get();
                (!r.matmul.is_empty()).then(|| view! { <RooflineChart results=r /> })
            }}
            {move || {
                let r = results.get();
                (!r.matmul.is_empty())
                    .then(|| {
                        let rows = table_sizes
                            .iter()
                            .map(|&n| {
                                let cpu = r.rate(ComputeDevice::Cpu, n);
                                let gpu = r.rate(ComputeDevice::Webgpu, n);
                                let show = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.2}"));
                                let ratio = match (cpu, gpu) {
                                    (Some(c), Some(g)) if c > 0.0 => format!("{:.2}×", g / c),
                                    _ => "–".into(),
                                };
                                view! {
                                    <tr data-size=n>
                                        <td>{format!("{n}²")}</td>
                                        <td>{format!("{:.1}", intensity(n))}</td>
                                        <td class="num" data-testid="cpu-gflops">{show(cpu)}</td>
                                        <td class="num" data-testid="gpu-gflops">{show(gpu)}</td>
                                        <td class="num">{ratio}</td>
                                    </tr>
                                }
                            })
                            .collect_view();
                        view! {
                            <table class="figures" data-testid="matmul-table">
                                <thead>
                                    <tr>
                                        <th>"matmul"</th>
                                        <th>"FLOP/byte"</th>
                                        <th>"CPU GFLOP/s"</th>
                                        <th>"WebGPU GFLOP/s"</th>
                                        <th>"WebGPU ÷ CPU"</th>
                                    </tr>
                                </thead>
                                <tbody>{rows}</tbody>
                            </table>
                        }
                    })
            }}
            {move || {
                let r = results.get();
                (!r.generation.is_empty())
                    .then(|| {
                        let rows = r
                            .generation
                            .iter()
                            .map(|(device, rate, text)| {
                                view! {
                                    <tr data-device=format!("{device:?}").to_lowercase()>
                                        <td>{device.label()}</td>
                                        <td class="num" data-testid="tokens-per-sec">{format!("{rate:.1}")}</td>
                                        <td><code class="sample">{text.clone()}</code></td>
                                    </tr>
                                }
                            })
                            .collect_view();
                        view! {
                            <table class="figures" data-testid="generation-table">
                                <thead>
                                    <tr>
                                        <th>"generation"</th>
                                        <th>"tokens/s"</th>
                                        <th>"greedy text"</th>
                                    </tr>
                                </thead>
                                <tbody>{rows}</tbody>
                            </table>
                        }
                    })
            }}
        </div>
    }
}

/// Log-log roofline: the measured roof of the adapter and each matmul at its intensity.
#[component]
fn RooflineChart(results: Results) -> impl IntoView {
    const W: f64 = 640.0;
    const H: f64 = 280.0;
    const LEFT: f64 = 56.0;
    const RIGHT: f64 = 12.0;
    const TOP: f64 = 12.0;
    const BOTTOM: f64 = 34.0;
    let (x_lo, x_hi) = (-1.0_f64, 3.0_f64);
    let rates = results.matmul.iter().map(|m| m.2).filter(|v| *v > 0.0);
    let roof_peak = results.roof.map(|r| r.0);
    let hi = rates.clone().chain(roof_peak).fold(1e-3, f64::max);
    let lo = rates.fold(hi, f64::min);
    let y_hi = (hi * 2.0).log10().ceil();
    let y_lo = (lo / 2.0).log10().floor().min(y_hi - 1.0);
    let sx = move |i: f64| LEFT + (i.log10() - x_lo) / (x_hi - x_lo) * (W - LEFT - RIGHT);
    let sy = move |g: f64| {
        TOP + (1.0 - (g.max(1e-12).log10() - y_lo) / (y_hi - y_lo)) * (H - TOP - BOTTOM)
    };
    let roof = results.roof.map(|(peak, bw)| {
        let d = (0..=80)
            .map(|i| {
                let x = 10f64.powf(x_lo + (x_hi - x_lo) * f64::from(i) / 80.0);
                let y = peak.min(x * bw);
                format!("{:.1},{:.1}", sx(x), sy(y))
            })
            .collect::<Vec<_>>()
            .join(" ");
        view! { <polyline class="series roof" points=d></polyline> }
    });
    let dots = results
        .matmul
        .iter()
        .map(|&(device, n, gflops)| {
            let class = match device {
                ComputeDevice::Webgpu => "dot gpu",
                ComputeDevice::Cpu => "dot cpu",
            };
            view! {
                <circle class=class cx=sx(intensity(n)) cy=sy(gflops) r="4.5">
                    <title>{format!("{} {n}²: {gflops:.2} GFLOP/s", device.label())}</title>
                </circle>
            }
        })
        .collect_view();
    let x_ticks = (x_lo as i32..=x_hi as i32)
        .map(|e| {
            let x = 10f64.powi(e);
            view! {
                <line class="grid" x1=sx(x) x2=sx(x) y1=TOP y2=H - BOTTOM></line>
                <text class="tick" x=sx(x) y=H - BOTTOM + 14.0 text-anchor="middle">{format!("{x}")}</text>
            }
        })
        .collect_view();
    let y_ticks = (y_lo as i32..=y_hi as i32)
        .map(|e| {
            let y = 10f64.powi(e);
            view! {
                <line class="grid" x1=LEFT x2=W - RIGHT y1=sy(y) y2=sy(y)></line>
                <text class="tick" x=LEFT - 6.0 y=sy(y) + 4.0 text-anchor="end">{format!("{y}")}</text>
            }
        })
        .collect_view();
    view! {
        <figure class="chart roofline">
            <svg
                viewBox=format!("0 0 {W} {H}")
                role="img"
                aria-label="matmul GFLOP/s against arithmetic intensity"
                data-testid="roofline-chart"
            >
                {x_ticks}
                {y_ticks}
                <line class="axis" x1=LEFT x2=LEFT y1=TOP y2=H - BOTTOM></line>
                <line class="axis" x1=LEFT x2=W - RIGHT y1=H - BOTTOM y2=H - BOTTOM></line>
                <text class="tick" x=W - RIGHT y=H - 4.0 text-anchor="end">"arithmetic intensity (FLOP/byte)"</text>
                {roof}
                {dots}
            </svg>
            <figcaption>
                <span class="legend-item roof">"WebGPU roofline (measured)"</span>
                <span class="legend-item gpu">"WebGPU matmul"</span>
                <span class="legend-item cpu">"CPU matmul"</span>
                <span class="axis-label">"GFLOP/s, log scale"</span>
            </figcaption>
        </figure>
    }
}
