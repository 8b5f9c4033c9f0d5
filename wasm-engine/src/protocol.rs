//! The messages that cross the wire between the site and the native runner, defined once so
//! that both sides compile against the same types (plain serde, no HTTP: this module builds
//! for wasm32 too).
//!
//! Routes (all under `/api`; writes need `Authorization: Bearer <token>`):
//! - `GET  /health` → [`Health`]
//! - `POST /jobs` with a [`JobSpec`] → 201 and the [`Job`]; 400 with an [`ApiError`] naming
//!   the field when the spec is invalid
//! - `GET  /jobs` → `Vec<Job>` (newest first), `GET /jobs/{id}` → [`Job`]
//! - `POST /jobs/{id}/cancel` → [`Job`] (a running job stops between two steps)
//! - `GET  /jobs/{id}/events` → Server-Sent Events: `id` is the event's [`EventRecord::seq`],
//!   `data` the JSON of an [`EventRecord`]; resume with `Last-Event-ID` (or `?after=N`); the
//!   stream ends after the job's final state
//! - `GET  /jobs/{id}/metrics` → `Vec<StepMetrics>`, the whole loss curve
//! - `GET  /jobs/{id}/checkpoint/config.json` and `/checkpoint/model.safetensors`: the latest
//!   checkpoint, loadable with [`crate::checkpoint::Checkpoint::from_parts`]
//! - `GET  /corpora` → `Vec<CorpusInfo>`, `PUT /corpora/{name}` with the text as body

use serde::{Deserialize, Serialize};

use crate::model::gpt;
use crate::train::{StepMetrics, TrainConfig};

/// Jobs are numbered by the runner from 1.
pub type JobId = i64;

/// What to train and on what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Free text shown in job lists.
    #[serde(default)]
    pub name: String,
    pub task: Task,
    #[serde(default)]
    pub train: TrainConfig,
    /// A corpus name from `GET /api/corpora`: "kjv" ships with the runner, others are uploaded.
    pub corpus: String,
    /// Share of the corpus's tail held out for the validation loss.
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f32,
    /// Steps between checkpoints; 0 writes only the final one. A killed runner resumes from
    /// the last checkpoint, so this bounds the work lost.
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: usize,
}

fn default_val_fraction() -> f32 {
    0.1
}

fn default_checkpoint_interval() -> usize {
    500
}

/// The two kinds of job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Task {
    /// Train a new model from random weights. `model.vocab_size` is set by the runner from
    /// the tokenizer (at submit time, so the stored spec shows it), so any value may be sent.
    Pretrain {
        model: gpt::Config,
        tokenizer: TokenizerSpec,
    },
    /// Continue training the latest checkpoint of job `base_job` on new text, with a fresh
    /// optimizer and `train`'s schedule. The model and tokenizer are the base job's.
    FineTune { base_job: JobId },
}

/// How a pretraining job turns its corpus into tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TokenizerSpec {
    /// One token per distinct character of the corpus.
    Char,
    /// Byte-level BPE trained on the corpus at the start of the job.
    Bpe { vocab_size: usize },
}

/// `queued → running → succeeded | failed | cancelled`. A runner restarted after a crash puts
/// its interrupted `running` jobs back to `queued`, and they resume from their checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// No more events follow a final state.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for JobState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown job state '{s}'"))
    }
}

/// A job as the runner reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub spec: JobSpec,
    pub state: JobState,
    /// Optimizer steps completed (and logged) so far.
    pub step: usize,
    /// Step of the latest checkpoint on disk, which `/checkpoint/*` serves.
    pub checkpoint_step: Option<usize>,
    /// Parameters of the model, known once the job has started.
    pub n_params: Option<usize>,
    /// Where it trains: "cpu" or "cuda".
    pub device: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// A cancel was asked for and the job will stop before its next step.
    pub cancel_requested: bool,
    /// Unix time in milliseconds.
    pub created_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
}

/// Something that happened to a job, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobEvent {
    /// The job entered `state`; `message` says why (the error for `failed`).
    State {
        state: JobState,
        #[serde(default)]
        message: Option<String>,
    },
    /// One optimizer step.
    Step(StepMetrics),
    /// Mean train and validation loss over `eval_batches` batches.
    Eval {
        step: usize,
        train_loss: f32,
        val_loss: f32,
    },
    /// A checkpoint at `step` is on disk and downloadable.
    Checkpoint { step: usize },
}

/// An event with its place in the job's history: `seq` counts from 1 and is the SSE `id`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub seq: u64,
    pub job_id: JobId,
    pub event: JobEvent,
}

/// The body of every 4xx and 5xx answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// Lowercase: what failed, then how to fix it.
    pub error: String,
    /// The request field at fault, as a dotted path (`task.model.n_head`), when there is one.
    #[serde(default)]
    pub field: Option<String>,
}

/// `GET /api/health`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// "ok".
    pub status: String,
    /// The runner's crate version.
    pub version: String,
    /// Where jobs train: "cpu" or "cuda".
    pub device: String,
    pub max_concurrent_jobs: usize,
    pub queued: usize,
    pub running: usize,
}

/// `GET /api/corpora`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CorpusInfo {
    pub name: String,
    pub bytes: u64,
    /// Shipped with the runner rather than uploaded.
    pub builtin: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_spec_takes_defaults() {
        let spec: JobSpec = serde_json::from_str(
            r#"{"task": {"kind": "pretrain",
                         "model": {"vocab_size": 0, "block_size": 16, "n_layer": 1, "n_head": 2, "n_embd": 32},
                         "tokenizer": {"kind": "char"}},
                "corpus": "kjv"}"#,
        )
        .unwrap();
        assert_eq!(spec.train, TrainConfig::default());
        assert_eq!(spec.val_fraction, 0.1);
        assert_eq!(spec.checkpoint_interval, 500);
        let back: JobSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        assert_eq!(back, spec);
    }

    #[test]
    fn events_are_tagged_by_type() {
        let event = JobEvent::Step(StepMetrics {
            step: 3,
            loss: 2.5,
            lr: 1e-3,
            grad_norm: 0.5,
            tokens_per_sec: 100.0,
        });
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "step");
        assert_eq!(json["step"], 3);
        assert_eq!(serde_json::from_value::<JobEvent>(json).unwrap(), event);
        let state = serde_json::to_value(JobEvent::State {
            state: JobState::Cancelled,
            message: None,
        })
        .unwrap();
        assert_eq!(state["state"], "cancelled");
    }
}
