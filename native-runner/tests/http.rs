//! The runner end to end: a real process on 127.0.0.1, a temporary data directory, HTTP.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use candle_core::Device;
use common::*;
use engine::checkpoint::Checkpoint;
use engine::protocol::{ApiError, Health, Job, JobEvent, JobState};
use engine::sample::{SamplingConfig, generate};
use engine::train::StepMetrics;
use serde_json::json;

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn a_job_streams_its_events_succeeds_and_its_checkpoint_samples() {
    let dir = tempfile::tempdir().unwrap();
    let runner = start_with_small_corpus(&dir, &[]);
    let job = runner.submit(&tiny_spec("small", 30, 10));
    assert_eq!(job.state, JobState::Queued);
    let engine::protocol::Task::Pretrain { model, .. } = &job.spec.task else {
        panic!("{job:?}")
    };
    let alphabet: BTreeSet<char> = kjv_slice(20_000).chars().collect();
    assert_eq!(
        model.vocab_size,
        alphabet.len(),
        "set from the tokenizer at submit"
    );

    // The stream replays from the start and ends after the final state.
    let events = runner.events(job.id, None);
    let seqs: Vec<u64> = events.iter().map(|(id, _)| *id).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    assert!(
        events
            .iter()
            .all(|(id, r)| r.seq == *id && r.job_id == job.id)
    );
    assert_eq!(
        states(&events),
        [JobState::Queued, JobState::Running, JobState::Succeeded]
    );
    let steps: Vec<&StepMetrics> = events
        .iter()
        .filter_map(|(_, r)| match &r.event {
            JobEvent::Step(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(
        steps.iter().map(|m| m.step).collect::<Vec<_>>(),
        (1..=30).collect::<Vec<_>>()
    );
    assert!(
        steps
            .iter()
            .all(|m| m.loss.is_finite() && m.tokens_per_sec > 0.0)
    );
    assert!(
        steps[29].loss < steps[0].loss,
        "the loss fell: {} → {}",
        steps[0].loss,
        steps[29].loss
    );
    let evals: Vec<usize> = events
        .iter()
        .filter_map(|(_, r)| match r.event {
            JobEvent::Eval { step, val_loss, .. } => {
                assert!(val_loss.is_finite());
                Some(step)
            }
            _ => None,
        })
        .collect();
    assert_eq!(evals, [10, 20, 30]);
    let checkpoints: Vec<usize> = events
        .iter()
        .filter_map(|(_, r)| match r.event {
            JobEvent::Checkpoint { step } => Some(step),
            _ => None,
        })
        .collect();
    assert_eq!(checkpoints, [10, 20, 30]);

    // Resuming with Last-Event-ID gives exactly the tail.
    let tail = runner.events(job.id, Some(5));
    assert_eq!(tail, events[5..]);
    // Past the end of a finished job: 204, so an EventSource stops reconnecting.
    let last = events.len() as u64;
    let past_end = request(
        &runner.addr,
        "GET",
        &format!("/api/jobs/{}/events", job.id),
        &[("Last-Event-ID", &last.to_string())],
        None,
    );
    assert_eq!(past_end.status, 204);

    let done = runner.job(job.id);
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!((done.step, done.checkpoint_step), (30, Some(30)));
    assert_eq!(done.device.as_deref(), Some("cpu"));
    let metrics: Vec<StepMetrics> = runner.get(&format!("/api/jobs/{}/metrics", job.id)).json();
    assert_eq!(metrics.len(), 30);
    assert_eq!(metrics[29], *steps[29]);

    // The two files load in the engine as they would in the browser, and sample.
    let config = runner.get(&format!("/api/jobs/{}/checkpoint/config.json", job.id));
    let weights = runner.get(&format!(
        "/api/jobs/{}/checkpoint/model.safetensors",
        job.id
    ));
    assert_eq!((config.status, weights.status), (200, 200));
    assert_eq!(weights.header("x-checkpoint-step"), Some("30"));
    let checkpoint = Checkpoint::from_parts(&config.body, &weights.body).unwrap();
    assert_eq!(checkpoint.meta.step, 30);
    assert_eq!(checkpoint.meta.model.n_embd, 32);
    assert_eq!(done.n_params, Some(checkpoint.meta.model.n_params()));
    let model = checkpoint.to_model(&Device::Cpu).unwrap();
    let tokenizer = &checkpoint.meta.tokenizer;
    let prompt = tokenizer.encode("And God said").unwrap();
    let new = generate(&model, &prompt, 20, &SamplingConfig::default(), true).unwrap();
    assert_eq!(new.len(), 20);
    let text = tokenizer.decode(&[prompt, new].concat()).unwrap();
    assert!(text.starts_with("And God said"), "{text}");
    assert_eq!(text.chars().count(), "And God said".len() + 20);
}

#[test]
fn cancel_stops_a_running_job_between_steps_and_a_queued_one_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let runner = start_with_small_corpus(&dir, &[]);
    let long = runner.submit(&tiny_spec("small", 1_000_000, 0));
    let waiting = runner.submit(&tiny_spec("small", 10, 0));
    runner.wait_until(long.id, MINUTE, |j| j.step >= 3);

    // Queued: cancelled at once.
    let response = runner.post(&format!("/api/jobs/{}/cancel", waiting.id), &json!({}));
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json::<Job>().state, JobState::Cancelled);

    // Running: asked, then stopped before its next step.
    let response = runner.post(&format!("/api/jobs/{}/cancel", long.id), &json!({}));
    assert_eq!(response.status, 202, "{}", response.text());
    assert!(response.json::<Job>().cancel_requested);
    let stopped = runner.wait_final(long.id, MINUTE);
    assert_eq!(stopped.state, JobState::Cancelled);
    assert!(stopped.step < 1_000_000);
    let events = runner.events(long.id, None);
    assert_eq!(
        states(&events),
        [JobState::Queued, JobState::Running, JobState::Cancelled]
    );
    let last_step = events
        .iter()
        .filter_map(|(_, r)| match &r.event {
            JobEvent::Step(m) => Some(m.step),
            _ => None,
        })
        .max();
    assert_eq!(last_step, Some(stopped.step));

    // Final jobs cannot be cancelled again.
    let again = runner.post(&format!("/api/jobs/{}/cancel", long.id), &json!({}));
    assert_eq!(again.status, 409);
    assert_eq!(runner.job(waiting.id).state, JobState::Cancelled);
    assert_eq!(runner.job(waiting.id).started_at_ms, None);
}

#[test]
fn writes_without_the_token_are_401_and_reads_are_open() {
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::start(&dir.path().join("data"), &[]);
    let spec = tiny_spec("kjv", 5, 0).to_string();
    for auth in [None, Some("Bearer wrong"), Some("Basic abc")] {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(auth) = auth {
            headers.push(("Authorization", auth));
        }
        let response = request(
            &runner.addr,
            "POST",
            "/api/jobs",
            &headers,
            Some(spec.as_bytes()),
        );
        assert_eq!(response.status, 401, "{auth:?}");
        assert!(response.json::<ApiError>().error.contains("bearer token"));
    }
    let upload = request(&runner.addr, "PUT", "/api/corpora/x", &[], Some(b"text"));
    assert_eq!(upload.status, 401);
    let cancel = request(&runner.addr, "POST", "/api/jobs/1/cancel", &[], None);
    assert_eq!(cancel.status, 401);
    let list = runner.get("/api/jobs");
    assert_eq!(list.status, 200);
    assert!(list.json::<Vec<Job>>().is_empty());

    // One runner per data directory.
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(["--addr", "127.0.0.1:0", "--data-dir"])
        .arg(&runner.data_dir)
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another runner is using"),
        "{second:?}"
    );

    // The token survives a restart.
    let token = runner.token.clone();
    runner.kill();
    let again = Runner::start(&dir.path().join("data"), &[]);
    assert_eq!(again.token, token);
    assert_eq!(token.len(), 64);
}

#[test]
fn an_invalid_spec_is_a_400_naming_the_field_and_queues_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let runner = start_with_small_corpus(&dir, &[]);
    let mut cases = Vec::new();
    let mut spec = tiny_spec("small", 5, 0);
    spec["task"]["model"]["n_head"] = json!(3);
    cases.push((spec, "task.model.n_embd"));
    let mut spec = tiny_spec("small", 5, 0);
    spec["task"]["model"]["n_layer"] = json!(0);
    cases.push((spec, "task.model.n_layer"));
    let mut spec = tiny_spec("small", 5, 0);
    spec["task"]["model"]["n_layer"] = json!("two");
    cases.push((spec, "task.model.n_layer"));
    let mut spec = tiny_spec("small", 5, 0);
    spec["train"]["batch_size"] = json!(0);
    cases.push((spec, "train.batch_size"));
    let mut spec = tiny_spec("small", 5, 0);
    spec["train"]["beta2"] = json!(1.5);
    cases.push((spec, "train.beta2"));
    cases.push((tiny_spec("nonesuch", 5, 0), "corpus"));
    let mut spec = tiny_spec("small", 5, 0);
    spec["task"]["model"]["block_size"] = json!(5000);
    cases.push((spec, "corpus"));
    let mut spec = tiny_spec("small", 5, 0);
    spec["val_fraction"] = json!(0.0);
    cases.push((spec, "val_fraction"));
    let mut spec = tiny_spec("small", 5, 0);
    spec["task"]["tokenizer"] = json!({"kind": "bpe", "vocab_size": 10});
    cases.push((spec, "task.tokenizer.vocab_size"));
    let mut spec = tiny_spec("small", 5, 0);
    spec["task"] = json!({"kind": "fine_tune", "base_job": 99});
    cases.push((spec, "task.base_job"));
    let mut spec = tiny_spec("small", 5, 0);
    spec["train"]["learning_rte"] = json!(0.1);
    cases.push((spec, "train.learning_rte"));
    let mut spec = tiny_spec("small", 5, 0);
    spec["task"]["model"]["n_embed"] = json!(64);
    cases.push((spec, "task.model.n_embed"));

    for (spec, field) in cases {
        let response = runner.post("/api/jobs", &spec);
        assert_eq!(response.status, 400, "{field}: {}", response.text());
        let error: ApiError = response.json();
        assert_eq!(error.field.as_deref(), Some(field), "{}", error.error);
        assert!(error.error.starts_with(field), "{}", error.error);
    }
    let garbage = request(
        &runner.addr,
        "POST",
        "/api/jobs",
        &[("Authorization", &format!("Bearer {}", runner.token))],
        Some(b"{not json"),
    );
    assert_eq!(garbage.status, 400);
    assert!(runner.get("/api/jobs").json::<Vec<Job>>().is_empty());
}

#[test]
fn an_upload_over_the_limit_is_413_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::start(&dir.path().join("data"), &["--max-upload-bytes", "10000"]);
    let big = kjv_slice(50_000);
    let response = runner.put("/api/corpora/big", big.as_bytes());
    assert_eq!(response.status, 413);
    assert!(response.json::<ApiError>().error.contains("10000 bytes"));
    let fits = runner.put("/api/corpora/fits", kjv_slice(10_000).as_bytes());
    assert_eq!(fits.status, 201, "{}", fits.text());
    let again = runner.put("/api/corpora/fits", b"other text");
    assert_eq!(again.status, 409);
    let bad_name = runner.put("/api/corpora/..%2Fescape", b"text");
    assert_eq!(bad_name.status, 400);
    let not_utf8 = runner.put("/api/corpora/binary", &[0xff, 0xfe, 0x00]);
    assert_eq!(not_utf8.status, 400);
    let names: Vec<String> = runner
        .get("/api/corpora")
        .json::<Vec<engine::protocol::CorpusInfo>>()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["kjv", "fits"]);
}

#[test]
fn sigkill_mid_job_then_restart_resumes_from_the_checkpoint_with_metrics_intact() {
    const STEPS: usize = 600;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let runner = start_with_small_corpus(&dir, &[]);
    let job = runner.submit(&tiny_spec("small", STEPS, 50));
    let before = runner.wait_until(job.id, MINUTE, |j| j.checkpoint_step >= Some(100));
    runner.kill();
    assert_eq!(before.state, JobState::Running, "killed mid-job");

    let runner = Runner::start(&data, &[]);
    let done = runner.wait_final(job.id, MINUTE);
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
    assert_eq!(done.checkpoint_step, Some(STEPS));
    let events = runner.events(job.id, None);
    let resumed_from = events
        .iter()
        .find_map(|(_, r)| match &r.event {
            JobEvent::State {
                state: JobState::Running,
                message: Some(m),
            } => Some(m.clone()),
            _ => None,
        })
        .expect("a 'resumed' event");
    let step: usize = resumed_from.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(step >= 100 && step.is_multiple_of(50), "{resumed_from}");
    assert_eq!(
        states(&events),
        [
            JobState::Queued,
            JobState::Running,
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded
        ]
    );

    // Every step logged once, in order, and equal to an uninterrupted run of the same spec.
    let metrics: Vec<StepMetrics> = runner.get(&format!("/api/jobs/{}/metrics", job.id)).json();
    assert_eq!(
        metrics.iter().map(|m| m.step).collect::<Vec<_>>(),
        (1..=STEPS).collect::<Vec<_>>()
    );
    let control = runner.submit(&tiny_spec("small", STEPS, 0));
    runner.wait_final(control.id, MINUTE);
    let reference: Vec<StepMetrics> = runner
        .get(&format!("/api/jobs/{}/metrics", control.id))
        .json();
    for (a, b) in metrics.iter().zip(&reference) {
        assert!(
            (a.loss - b.loss).abs() < 1e-4,
            "step {}: {} vs {}",
            a.step,
            a.loss,
            b.loss
        );
    }
}

#[test]
fn sigterm_checkpoints_the_running_job_which_resumes_on_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let runner = start_with_small_corpus(&dir, &[]);
    let job = runner.submit(&tiny_spec("small", 100_000, 0));
    runner.wait_until(job.id, MINUTE, |j| j.step >= 5);
    assert!(runner.terminate().success());

    let runner = Runner::start(&data, &[]);
    let resumed = runner.wait_until(job.id, MINUTE, |j| {
        j.checkpoint_step.is_some_and(|c| j.step > c + 3)
    });
    assert_eq!(resumed.state, JobState::Running);
    runner.post(&format!("/api/jobs/{}/cancel", job.id), &json!({}));
    let cancelled = runner.wait_final(job.id, MINUTE);
    assert_eq!(cancelled.state, JobState::Cancelled);

    // The checkpoint was written on the way out at the last logged step, so the resumed run
    // neither skips nor repeats a step.
    let events = runner.events(job.id, None);
    let resumed_at = events
        .iter()
        .find_map(|(_, r)| match &r.event {
            JobEvent::State {
                state: JobState::Running,
                message: Some(m),
            } => m.rsplit(' ').next()?.parse::<usize>().ok(),
            _ => None,
        })
        .expect("a 'resumed' event");
    let steps: Vec<usize> = events
        .iter()
        .filter_map(|(_, r)| match &r.event {
            JobEvent::Step(m) => Some(m.step),
            _ => None,
        })
        .collect();
    assert!(resumed_at >= 5);
    assert_eq!(steps, (1..=cancelled.step).collect::<Vec<_>>());
    let before_restart = events
        .iter()
        .position(|(_, r)| {
            matches!(
                r.event,
                JobEvent::State {
                    state: JobState::Queued,
                    message: Some(_)
                }
            )
        })
        .unwrap();
    let last_before = events[..before_restart]
        .iter()
        .rev()
        .find_map(|(_, r)| match &r.event {
            JobEvent::Step(m) => Some(m.step),
            _ => None,
        });
    assert_eq!(last_before, Some(resumed_at));
}

#[test]
fn fifty_concurrent_submissions_all_reach_a_final_state() {
    const JOBS: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let runner = start_with_small_corpus(&dir, &["--max-concurrent-jobs", "2"]);
    let ids: Vec<i64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..JOBS)
            .map(|i| {
                let runner = &runner;
                s.spawn(move || {
                    let mut spec = tiny_spec("small", 5, 0);
                    spec["name"] = json!(format!("job {i}"));
                    runner.submit(&spec).id
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), JOBS);
    for &id in &ids {
        let job = runner.wait_final(id, MINUTE);
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
        assert_eq!((job.step, job.checkpoint_step), (5, Some(5)));
        let metrics: Vec<StepMetrics> = runner.get(&format!("/api/jobs/{id}/metrics")).json();
        assert_eq!(metrics.len(), 5);
    }
    let listed = runner.get("/api/jobs").json::<Vec<Job>>();
    assert_eq!(listed.len(), JOBS);
    let names: BTreeSet<String> = listed.into_iter().map(|j| j.spec.name).collect();
    assert_eq!(names.len(), JOBS);
    let health: Health = runner.get("/api/health").json();
    assert_eq!((health.queued, health.running), (0, 0));
}

#[test]
fn fine_tuning_continues_a_finished_job_on_new_text() {
    let dir = tempfile::tempdir().unwrap();
    let runner = start_with_small_corpus(&dir, &[]);
    let base = runner.submit(&tiny_spec("small", 10, 0));
    runner.wait_final(base.id, MINUTE);
    // The char tokenizer knows only the base corpus's characters.
    let response = runner.put("/api/corpora/alien", "ж".repeat(5000).as_bytes());
    assert_eq!(response.status, 201);
    // New text in the base's alphabet.
    let base_text = kjv_slice(20_000);
    let new_text: String = kjv_slice(40_000)[20_000..]
        .chars()
        .filter(|c| base_text.contains(*c))
        .collect();
    let response = runner.put("/api/corpora/psalms", new_text.as_bytes());
    assert_eq!(response.status, 201);

    let mut spec = tiny_spec("alien", 10, 0);
    spec["task"] = json!({"kind": "fine_tune", "base_job": base.id});
    let refused = runner.post("/api/jobs", &spec);
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert_eq!(refused.json::<ApiError>().field.as_deref(), Some("corpus"));

    spec["corpus"] = json!("psalms");
    let tuned = runner.submit(&spec);
    let tuned = runner.wait_final(tuned.id, MINUTE);
    assert_eq!(tuned.state, JobState::Succeeded, "{:?}", tuned.error);
    let config = runner.get(&format!("/api/jobs/{}/checkpoint/config.json", tuned.id));
    let base_config = runner.get(&format!("/api/jobs/{}/checkpoint/config.json", base.id));
    let meta: serde_json::Value = serde_json::from_slice(&config.body).unwrap();
    let base_meta: serde_json::Value = serde_json::from_slice(&base_config.body).unwrap();
    assert_eq!(meta["model"], base_meta["model"]);
    assert_eq!(meta["tokenizer"], base_meta["tokenizer"]);
    assert_eq!(meta["step"], 10);
}

#[test]
fn serves_the_site_with_an_spa_fallback_and_health() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(
        site.join("index.html"),
        "<!doctype html><title>workshop</title>",
    )
    .unwrap();
    std::fs::write(site.join("engine_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let runner = Runner::start(
        &dir.path().join("data"),
        &[
            "--site",
            site.to_str().unwrap(),
            "--cors-origin",
            "http://localhost:8081",
        ],
    );
    let index = runner.get("/");
    assert_eq!(index.status, 200);
    assert!(index.text().contains("workshop"));
    let deep = runner.get("/lessons/d3-pretraining-on-the-runner");
    assert_eq!(deep.status, 200);
    assert!(deep.text().contains("workshop"));
    let wasm = runner.get("/engine_bg.wasm");
    assert_eq!(wasm.header("content-type"), Some("application/wasm"));
    let missing = runner.get("/api/nope");
    assert_eq!(missing.status, 404);
    assert!(missing.json::<ApiError>().error.contains("/api/nope"));
    let health: Health = runner.get("/api/health").json();
    assert_eq!(health.status, "ok");
    assert_eq!(health.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(health.device, "cpu");
    assert_eq!(health.max_concurrent_jobs, 1);

    // CORS: a preflight from a configured origin is allowed, others are not.
    let preflight = |origin: &str| {
        request(
            &runner.addr,
            "OPTIONS",
            "/api/jobs",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                (
                    "Access-Control-Request-Headers",
                    "authorization,content-type",
                ),
            ],
            None,
        )
    };
    let allowed = preflight("http://localhost:8081");
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("http://localhost:8081")
    );
    let other = preflight("http://evil.example");
    assert_eq!(other.header("access-control-allow-origin"), None);
}
