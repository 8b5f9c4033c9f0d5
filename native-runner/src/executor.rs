//! The executor: a fixed number of workers, each taking the oldest queued job and training it
//! with the engine's [`Trainer`] one step at a time, so that it can log, checkpoint and stop
//! between any two steps.
//!
//! A job's folder is `<data-dir>/jobs/<id>/`; its checkpoints are `checkpoint-<step>/` (the
//! trainer's resumable state: `config.json`, `model.safetensors`, `optimizer.safetensors`),
//! written into a temporary folder and renamed, then recorded in the store. Only then are
//! older ones deleted, so a kill at any moment leaves the recorded checkpoint whole.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use candle_core::Device;
use engine::checkpoint::{self, Checkpoint, CheckpointMeta};
use engine::data::Dataset;
use engine::protocol::{Job, JobEvent, JobId, JobSpec, JobState, Task, TokenizerSpec};
use engine::tokenizer::{BpeTokenizer, CharTokenizer, Tokenizer};
use engine::train::Trainer;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::corpora::Corpora;
use crate::store::Store;

pub struct Executor {
    store: Arc<Store>,
    corpora: Arc<Corpora>,
    jobs_dir: PathBuf,
    device: Device,
    /// Poked when a job is queued.
    wake: Notify,
    /// Set once on shutdown: workers stop between steps, checkpoint and leave their jobs
    /// `running`, so the next start resumes them.
    shutdown: watch::Sender<bool>,
}

/// How a training run ended, when it did not fail.
enum Outcome {
    Succeeded,
    Cancelled {
        step: usize,
    },
    /// The runner is shutting down; the job resumes on the next start.
    Interrupted,
}

impl Executor {
    pub fn new(
        store: Arc<Store>,
        corpora: Arc<Corpora>,
        data_dir: &Path,
        device: Device,
    ) -> anyhow::Result<Arc<Self>> {
        let jobs_dir = data_dir.join("jobs");
        std::fs::create_dir_all(&jobs_dir)
            .with_context(|| format!("creating {}", jobs_dir.display()))?;
        Ok(Arc::new(Self {
            store,
            corpora,
            jobs_dir,
            device,
            wake: Notify::new(),
            shutdown: watch::channel(false).0,
        }))
    }

    pub fn device_name(&self) -> String {
        device_name(&self.device)
    }

    /// Starts `n` workers.
    pub fn spawn(self: &Arc<Self>, n: usize) -> Vec<JoinHandle<()>> {
        (0..n.max(1))
            .map(|_| tokio::spawn(self.clone().worker()))
            .collect()
    }

    /// Tells a sleeping worker that a job was queued.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub fn checkpoint_dir(&self, id: JobId, step: usize) -> PathBuf {
        self.jobs_dir
            .join(id.to_string())
            .join(format!("checkpoint-{step:08}"))
    }

    async fn worker(self: Arc<Self>) {
        let mut shutdown = self.shutdown.subscribe();
        loop {
            if self.is_shutting_down() {
                return;
            }
            match self.store.claim_next() {
                Ok(Some(job)) => {
                    // More may be queued: pass the wake-up on to an idle worker.
                    self.wake.notify_one();
                    let (me, id) = (self.clone(), job.id);
                    if let Err(e) = tokio::task::spawn_blocking(move || me.run(job)).await {
                        // Recorded, or the job would stay `running` and panic again on
                        // every restart.
                        tracing::error!(job = id, "the training thread panicked: {e}");
                        let message =
                            format!("the training thread panicked ({e}); see the runner's log");
                        if let Err(e) = self.store.finish(id, JobState::Failed, Some(message)) {
                            tracing::error!(job = id, "cannot record the panic: {e:#}");
                        }
                    }
                }
                Ok(None) => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    }
                }
                Err(e) => {
                    tracing::error!("cannot claim a job: {e:#}");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Trains `job` (already `running` in the store) and records how it ended.
    fn run(&self, job: Job) {
        let id = job.id;
        tracing::info!(job = id, "training");
        let recorded = match self.train(&job) {
            Ok(Outcome::Succeeded) => self.store.finish(id, JobState::Succeeded, None),
            Ok(Outcome::Cancelled { step }) => self.store.finish(
                id,
                JobState::Cancelled,
                Some(format!("cancelled at step {step}")),
            ),
            Ok(Outcome::Interrupted) => Ok(()),
            Err(e) => {
                tracing::warn!(job = id, "failed: {e:#}");
                self.store
                    .finish(id, JobState::Failed, Some(format!("{e:#}")))
            }
        };
        if let Err(e) = recorded {
            tracing::error!(job = id, "cannot record the end of the job: {e:#}");
        }
    }

    fn train(&self, job: &Job) -> anyhow::Result<Outcome> {
        let (id, spec) = (job.id, &job.spec);
        let job_dir = self.jobs_dir.join(id.to_string());
        std::fs::create_dir_all(&job_dir)?;
        let text = self.corpora.text(&spec.corpus, "corpus")?;

        let mut trainer = match job.checkpoint_step {
            Some(step) => {
                let dir = self.checkpoint_dir(id, step);
                let meta = read_meta(&dir)?;
                let data = Dataset::new(&text, meta.tokenizer, spec.val_fraction)?;
                Trainer::resume(&dir, data, &self.device)
                    .with_context(|| format!("resuming from {}", dir.display()))?
            }
            None => self.fresh_trainer(id, spec, &text)?,
        };
        self.store
            .set_info(id, trainer.model_config().n_params(), &self.device_name())?;

        // Steps up to `logged` were logged before a crash; the resumed run redoes them
        // (its batches depend only on seed and step) without logging them twice.
        let logged = job.step;
        let mut checkpoint_step = job.checkpoint_step;
        let mut cancel = self.store.cancel_requested(id)?;
        let mut evaluated_at = None;
        while !trainer.is_done() {
            if cancel {
                return Ok(Outcome::Cancelled {
                    step: trainer.step_count(),
                });
            }
            if self.is_shutting_down() {
                if checkpoint_step != Some(trainer.step_count()) {
                    self.save_checkpoint(id, &job_dir, &trainer)?;
                }
                return Ok(Outcome::Interrupted);
            }
            let metrics = trainer.step()?;
            let step = metrics.step;
            cancel = if step > logged {
                self.store.record_step(id, &metrics)?
            } else {
                self.store.cancel_requested(id)?
            };
            if trainer.should_eval() && step > logged {
                self.eval(id, &mut trainer)?;
                evaluated_at = Some(step);
            }
            if spec.checkpoint_interval > 0 && step % spec.checkpoint_interval == 0 {
                self.save_checkpoint(id, &job_dir, &trainer)?;
                checkpoint_step = Some(step);
            }
        }
        let step = trainer.step_count();
        if evaluated_at != Some(step) && logged < step {
            self.eval(id, &mut trainer)?;
        }
        if checkpoint_step != Some(step) {
            self.save_checkpoint(id, &job_dir, &trainer)?;
        }
        Ok(Outcome::Succeeded)
    }

    fn eval(&self, id: JobId, trainer: &mut Trainer) -> anyhow::Result<()> {
        let eval = trainer.estimate_loss()?;
        self.store.record_event(
            id,
            &JobEvent::Eval {
                step: eval.step,
                train_loss: eval.train,
                val_loss: eval.val,
            },
        )?;
        Ok(())
    }

    fn fresh_trainer(&self, id: JobId, spec: &JobSpec, text: &str) -> anyhow::Result<Trainer> {
        match &spec.task {
            Task::Pretrain { model, tokenizer } => {
                let tokenizer = build_tokenizer(tokenizer, text)?;
                let mut model = model.clone();
                model.vocab_size = tokenizer.vocab_size();
                let data = Dataset::new(text, tokenizer, spec.val_fraction)?;
                Ok(Trainer::new(model, spec.train.clone(), data, &self.device)?)
            }
            Task::FineTune { base_job } => {
                let base = self.store.job(*base_job)?;
                let step = base.checkpoint_step.with_context(|| {
                    format!("job {base_job} has no checkpoint to fine-tune from")
                })?;
                let base = Checkpoint::load(&self.checkpoint_dir(*base_job, step))?;
                let data = Dataset::new(text, base.meta.tokenizer.clone(), spec.val_fraction)?;
                let trainer =
                    Trainer::from_checkpoint(&base, spec.train.clone(), data, &self.device)?;
                tracing::info!(job = id, base = base_job, "fine-tuning from step {step}");
                Ok(trainer)
            }
        }
    }

    /// Writes the trainer's state atomically and records it; then drops older checkpoints.
    fn save_checkpoint(&self, id: JobId, job_dir: &Path, trainer: &Trainer) -> anyhow::Result<()> {
        let step = trainer.step_count();
        let dir = self.checkpoint_dir(id, step);
        let tmp = job_dir.join(format!(".tmp-checkpoint-{step:08}"));
        let _ = std::fs::remove_dir_all(&tmp);
        trainer
            .save_state(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        for entry in std::fs::read_dir(&tmp)? {
            std::fs::File::open(entry?.path())?.sync_all()?;
        }
        if dir.exists() {
            // Left by a run that crashed after writing it but before recording it.
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::rename(&tmp, &dir)
            .with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
        std::fs::File::open(job_dir)?.sync_all()?;
        self.store.record_checkpoint(id, step)?;
        for entry in std::fs::read_dir(job_dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("checkpoint-") && path != dir {
                let _ = std::fs::remove_dir_all(&path);
            }
        }
        Ok(())
    }
}

pub fn build_tokenizer(spec: &TokenizerSpec, text: &str) -> engine::Result<Tokenizer> {
    Ok(match spec {
        TokenizerSpec::Char => Tokenizer::Char(CharTokenizer::from_text(text)?),
        TokenizerSpec::Bpe { vocab_size } => {
            Tokenizer::Bpe(BpeTokenizer::train(text, *vocab_size)?)
        }
    })
}

/// The `config.json` of a checkpoint folder, without reading its weights.
pub fn read_meta(dir: &Path) -> anyhow::Result<CheckpointMeta> {
    let path = dir.join(checkpoint::CONFIG_FILE);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

pub fn device_name(device: &Device) -> String {
    engine::device::name(device).to_string()
}
