//! End-to-end tests of lesson E4 (GPU essentials) and the site's device switch: the WebGPU
//! path in headless Chromium with SwiftShader's adapter (`--enable-unsafe-webgpu`), and the
//! CPU fallback without it. Screenshots land in target/e2e/.

use std::time::Duration;

use anyhow::Result;
use e2e::{Session, wait_for};

const E4: &str = "/lesson/gpu-essentials";

const ROOFLINE: &str = "def roofline(m, n, k, bytes_per_value, peak_flops, bandwidth):\n    flops = 2 * m * n * k\n    nbytes = bytes_per_value * (m * k + k * n + m * n)\n    intensity = flops / nbytes\n    attainable = min(peak_flops, intensity * bandwidth)\n    return [flops, nbytes, intensity, attainable, flops / attainable]\n";
const ROOFLINE_NO_OUTPUT: &str = "def roofline(m, n, k, bytes_per_value, peak_flops, bandwidth):\n    flops = 2 * m * n * k\n    nbytes = bytes_per_value * (m * k + k * n)\n    intensity = flops / nbytes\n    attainable = min(peak_flops, intensity * bandwidth)\n    return [flops, nbytes, intensity, attainable, flops / attainable]\n";

fn text(s: &Session, css: &str) -> Option<String> {
    let e = s.browser.find(css)?;
    s.browser.text(&e).ok()
}

/// The numbers of a column of the widget's matmul table, by the cell's test id.
fn column(s: &Session, testid: &str) -> Vec<Option<f64>> {
    s.browser
        .find_all(&format!(
            "[data-testid='matmul-table'] [data-testid='{testid}']"
        ))
        .iter()
        .map(|e| s.browser.text(e).ok().and_then(|t| t.parse().ok()))
        .collect()
}

/// `(device row, tokens/s, greedy text)` of the generation table.
fn generation(s: &Session) -> Vec<(String, f64, String)> {
    s.browser
        .execute(
            "return [...document.querySelectorAll(\"[data-testid='generation-table'] tbody tr\")]\
             .map(r => [r.dataset.device, r.cells[1].innerText, r.cells[2].innerText]);",
            vec![],
        )
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|row| {
            Some((
                row[0].as_str()?.to_string(),
                row[1].as_str()?.parse().ok()?,
                row[2].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// Runs the benchmark and waits until every row is in (it ends with generation).
fn run_bench(s: &Session, devices: usize) -> Result<Vec<(String, f64, String)>> {
    let run = s.browser.wait("[data-testid='gpu-run']", 60)?;
    s.browser.click(&run)?;
    wait_for(Duration::from_secs(300), "the benchmark to finish", || {
        let rows = generation(s);
        (rows.len() == devices
            && text(s, "[data-testid='gpu-run']").is_some_and(|t| t.contains("Run")))
        .then_some(rows)
    })
}

#[test]
fn e4_without_webgpu_measures_the_cpu_and_says_why() -> Result<()> {
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    s.open(E4)?;
    let rows = run_bench(&s, 1)?;
    let notice = s.browser.wait("[data-testid='gpu-notice']", 5)?;
    let notice = s.browser.text(&notice)?;
    assert!(notice.contains("WebGPU"), "{notice}");
    let cpu = column(&s, "cpu-gflops");
    assert_eq!(cpu.len(), 6);
    assert!(cpu.iter().all(|g| g.is_some_and(|g| g > 0.01)), "{cpu:?}");
    assert!(column(&s, "gpu-gflops").iter().all(Option::is_none));
    assert_eq!(rows[0].0, "cpu");
    assert!(rows[0].1 > 1.0, "{rows:?}");
    let status = s
        .browser
        .wait_text("[data-testid='device-status']", "CPU", 10)?;
    assert!(
        status.contains('⚠'),
        "the header marks the fallback: {status}"
    );
    s.screenshot("e4-cpu-fallback")?;

    let verdict = s.run_code("roofline", ROOFLINE_NO_OUTPUT)?;
    assert!(verdict.contains('✗'), "{verdict}");
    assert!(verdict.contains("written back"), "the hint: {verdict}");
    let verdict = s.run_code("roofline", ROOFLINE)?;
    assert!(verdict.contains('✓'), "{verdict}");
    Ok(())
}

#[test]
fn e4_on_webgpu_runs_the_kernels_and_generates_the_cpus_greedy_text() -> Result<()> {
    let Some(s) = Session::start_with_webgpu()? else {
        return Ok(());
    };
    s.open(E4)?;
    let rows = run_bench(&s, 2)?;
    let adapter = text(&s, "[data-testid='gpu-adapter']").unwrap_or_default();
    assert!(adapter.starts_with("WebGPU adapter:"), "{adapter}");
    let roof = text(&s, "[data-testid='gpu-roof']").unwrap_or_default();
    assert!(roof.contains("GFLOP/s") && roof.contains("GB/s"), "{roof}");
    let gpu = column(&s, "gpu-gflops");
    assert_eq!(gpu.len(), 6);
    assert!(gpu.iter().all(|g| g.is_some_and(|g| g > 0.001)), "{gpu:?}");
    let by = |device: &str| rows.iter().find(|r| r.0 == device).cloned();
    let (cpu, webgpu) = (by("cpu").unwrap(), by("webgpu").unwrap());
    assert!(webgpu.1 > 0.1, "{rows:?}");
    assert_eq!(webgpu.2, cpu.2, "greedy tokens on WebGPU equal the CPU's");
    assert!(
        s.browser
            .find_all("[data-testid='roofline-chart'] circle")
            .len()
            >= 12
    );
    s.browser
        .wait_text("[data-testid='device-status']", "WebGPU", 10)?;
    s.screenshot("e4-webgpu")?;

    // Sampling follows the switch: D1's sample widget reports the device it ran on.
    s.open("/lesson/bigram-to-gpt")?;
    let generate = |expect: &str| -> Result<String> {
        let b = s.browser.wait("[data-testid='sample-generate']", 60)?;
        wait_for(Duration::from_secs(60), "the model to load", || {
            s.browser
                .execute(
                    "return !document.querySelector(\"[data-testid='sample-generate']\").disabled",
                    vec![],
                )
                .ok()
                .and_then(|v| v.as_bool())
                .filter(|enabled| *enabled)
        })?;
        s.browser.click(&b)?;
        s.browser
            .wait_text("[data-testid='sample-speed']", expect, 60)
    };
    let on_gpu = generate("on WebGPU")?;
    assert!(on_gpu.contains("tokens/s"), "{on_gpu}");
    let switch = s.browser.wait("[data-testid='device-webgpu']", 5)?;
    s.browser.click(&switch)?;
    s.browser
        .wait_text("[data-testid='device-status']", "CPU", 10)?;
    generate("on CPU")?;
    Ok(())
}
