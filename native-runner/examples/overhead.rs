//! The runner's end-to-end overhead: the wall time of a tiny pretraining job submitted through
//! the HTTP API and followed over Server-Sent Events until it succeeds, against the same
//! training called directly on the engine (same corpus, model, steps, evaluations and final
//! checkpoint). Target: ≤ 1.2×. Writes `target/bench/runner.json`.
//!
//! `cargo run --release -p runner --example overhead [-- --steps 300 --repeats 3]`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use candle_core::Device;
use clap::Parser;
use engine::data::Dataset;
use engine::protocol::JobSpec;
use engine::train::Trainer;
use serde_json::json;

#[derive(Parser)]
struct Opts {
    /// Optimizer steps of the job.
    #[arg(long, default_value_t = 300)]
    steps: usize,
    /// Runs of each path; the median is reported.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Bytes of the KJV used as the corpus.
    #[arg(long, default_value_t = 200_000)]
    corpus_bytes: usize,
    /// Where to write the figures; default `target/bench/runner.json`.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let opts = Opts::parse();
    let kjv = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../static/data/kjv.txt"
    ))?;
    let mut end = opts.corpus_bytes.min(kjv.len());
    while !kjv.is_char_boundary(end) {
        end -= 1;
    }
    let corpus = &kjv[..end];
    let spec_json = json!({
        "name": "overhead",
        "task": {
            "kind": "pretrain",
            "model": {"vocab_size": 0, "block_size": 32, "n_layer": 1, "n_head": 2, "n_embd": 32},
            "tokenizer": {"kind": "char"}
        },
        "train": {"seed": 1, "batch_size": 8, "max_steps": opts.steps, "eval_interval": 100, "eval_batches": 4},
        "corpus": "bench",
        "checkpoint_interval": 0
    });
    let spec: JobSpec = serde_json::from_value(spec_json.clone())?;

    // The runner, in this process, on a free port, with a fresh data directory.
    let data_dir = tempfile::tempdir()?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("127.0.0.1:{port}");
    let args = runner::Args::parse_from([
        "runner",
        "--addr",
        &addr,
        "--device",
        "cpu",
        "--data-dir",
        data_dir.path().to_str().unwrap(),
    ]);
    std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(runner::run(args))
            .unwrap()
    });
    wait_for_health(&addr)?;
    let token = std::fs::read_to_string(data_dir.path().join("token"))?
        .trim()
        .to_string();
    let status = http(
        &addr,
        "PUT",
        "/api/corpora/bench",
        &token,
        corpus.as_bytes(),
    )?
    .0;
    anyhow::ensure!(status == 201, "upload failed with {status}");

    let mut direct = Vec::new();
    let mut api = Vec::new();
    let mut inside = Vec::new();
    for _ in 0..opts.repeats {
        // On a thread of its own, as the runner's job is, so both see the same scheduling.
        direct.push(std::thread::scope(|s| {
            s.spawn(|| train_directly(&spec, corpus)).join().unwrap()
        })?);
        let (wall, in_executor) = train_through_api(&addr, &token, &spec_json)?;
        api.push(wall);
        inside.push(in_executor);
    }
    let (direct_s, api_s) = (median(&mut direct), median(&mut api));
    let inside_s = median(&mut inside);
    let ratio = api_s / direct_s;
    // The array-of-figures format `cargo xtask bench` reads (extra keys are ignored).
    let job = json!({"spec": spec_json, "corpus_bytes": corpus.len(), "device": "cpu", "repeats": opts.repeats});
    let report = json!([
        {"name": "runner_job_api", "value": api_s, "unit": "s",
         "description": "wall time of the job submitted over HTTP and followed over SSE until it succeeded",
         "job": job},
        {"name": "runner_job_direct", "value": direct_s, "unit": "s",
         "description": "the same training called directly on the engine", "job": job},
        {"name": "runner_job_in_executor", "value": inside_s, "unit": "s",
         "description": "the part of runner_job_api between the job's start and end in the store"},
        {"name": "runner_overhead", "value": ratio, "unit": "x", "target": 1.2,
         "description": "runner_job_api / runner_job_direct (median of each)"},
    ]);
    let out = opts.out.unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")))
            .join("bench/runner.json")
    });
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")?;
    println!(
        "runner overhead: through the API {api_s:.3} s (executor {inside_s:.3} s), direct {direct_s:.3} s, ratio {ratio:.3} (target ≤ 1.2)"
    );
    println!("wrote {}", out.display());
    Ok(())
}

/// What the executor does for this spec, minus the HTTP, the store and the events.
fn train_directly(spec: &JobSpec, corpus: &str) -> anyhow::Result<f64> {
    let start = Instant::now();
    let engine::protocol::Task::Pretrain { model, tokenizer } = &spec.task else {
        anyhow::bail!("the bench job is a pretraining job");
    };
    let tokenizer = runner::executor::build_tokenizer(tokenizer, corpus)?;
    let mut model = model.clone();
    model.vocab_size = tokenizer.vocab_size();
    let data = Dataset::new(corpus, tokenizer, spec.val_fraction)?;
    let mut trainer = Trainer::new(model, spec.train.clone(), data, &Device::Cpu)?;
    while !trainer.is_done() {
        trainer.step()?;
        if trainer.should_eval() {
            trainer.estimate_loss()?;
        }
    }
    let dir = tempfile::tempdir()?;
    trainer.save_state(dir.path())?;
    Ok(start.elapsed().as_secs_f64())
}

/// Wall time through the API, and the part of it the executor spent on the job
/// (`finished_at_ms - started_at_ms`).
fn train_through_api(
    addr: &str,
    token: &str,
    spec: &serde_json::Value,
) -> anyhow::Result<(f64, f64)> {
    let start = Instant::now();
    let (status, body) = http(
        addr,
        "POST",
        "/api/jobs",
        token,
        spec.to_string().as_bytes(),
    )?;
    anyhow::ensure!(status == 201, "submit failed with {status}: {body}");
    let id = serde_json::from_str::<serde_json::Value>(&body)?["id"]
        .as_i64()
        .unwrap();
    // The event stream ends after the final state.
    let mut stream = TcpStream::connect(addr)?;
    write!(
        stream,
        "GET /api/jobs/{id}/events HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut last_state = String::new();
    for line in BufReader::new(stream).lines() {
        let line = line?;
        if line.contains("\"type\":\"state\"") {
            last_state = line;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    anyhow::ensure!(
        last_state.contains("succeeded"),
        "the job did not succeed: {last_state}"
    );
    let (_, job) = http(addr, "GET", &format!("/api/jobs/{id}"), token, b"")?;
    let job: serde_json::Value = serde_json::from_str(&job)?;
    let inside = job["finished_at_ms"].as_f64().unwrap_or(f64::NAN)
        - job["started_at_ms"].as_f64().unwrap_or(f64::NAN);
    Ok((elapsed, inside / 1000.0))
}

fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    body: &[u8],
) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let status = raw.split(' ').nth(1).unwrap_or("0").parse()?;
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_string()))
}

fn wait_for_health(addr: &str) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if let Ok(mut stream) = TcpStream::connect(addr) {
            write!(
                stream,
                "GET /api/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            )?;
            let mut raw = String::new();
            let _ = stream.read_to_string(&mut raw);
            if raw.starts_with("HTTP/1.1 200") {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!("the runner did not come up on {addr}")
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}
