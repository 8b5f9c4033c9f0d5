//! The job store: one SQLite file under the data directory. Every state change is committed
//! here before the runner acts on it, and every event gets a per-job sequence number that
//! Server-Sent Events use as their id, so a page can replay a job's history from any point.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use engine::protocol::{EventRecord, Job, JobEvent, JobId, JobSpec, JobState};
use engine::train::StepMetrics;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use tokio::sync::broadcast;

use crate::error::{Error, Result};

/// The migrations in `migrations/`, applied in this order; `PRAGMA user_version` counts
/// those already applied.
pub const MIGRATIONS: &[(&str, &str)] =
    &[("0001_jobs.sql", include_str!("../migrations/0001_jobs.sql"))];

pub struct Store {
    conn: Mutex<Connection>,
    /// Tells event streams that a job has new events (its id); they read them from the table.
    notify: broadcast::Sender<JobId>,
}

/// What a cancel request did.
#[derive(Debug, PartialEq)]
pub enum Cancelled {
    /// The job was queued and is now cancelled.
    Now(Job),
    /// The job is running and will stop before its next step.
    Requested(Job),
}

const JOB_COLUMNS: &str = "id, spec, state, step, checkpoint_step, n_params, device, error, \
     cancel_requested, created_at_ms, started_at_ms, finished_at_ms";

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        // WAL with synchronous=NORMAL: a commit survives the process being killed (only a
        // power loss can drop the last transactions), and readers never block the writer.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&conn)?;
        let (notify, _) = broadcast::channel(1024);
        Ok(Self {
            conn: Mutex::new(conn),
            notify,
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-done transaction behind
        // (rusqlite rolls back on drop), so the connection is still good.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<JobId> {
        self.notify.subscribe()
    }

    /// Runs `f` in a transaction, then wakes the event streams of `job`.
    fn write<T>(&self, job: JobId, f: impl FnOnce(&Transaction) -> Result<T>) -> Result<T> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let out = f(&tx)?;
        tx.commit()?;
        drop(conn);
        // No receiver is not an error: nobody is watching.
        let _ = self.notify.send(job);
        Ok(out)
    }

    pub fn create_job(&self, spec: &JobSpec) -> Result<Job> {
        let spec_json = serde_json::to_string(spec).map_err(anyhow::Error::from)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO jobs (spec, state, created_at_ms) VALUES (?1, 'queued', ?2)",
            params![spec_json, now_ms()],
        )?;
        let id = tx.last_insert_rowid();
        append(
            &tx,
            id,
            &JobEvent::State {
                state: JobState::Queued,
                message: None,
            },
        )?;
        let job = get(&tx, id)?.context("job vanished inside its own transaction")?;
        tx.commit()?;
        drop(conn);
        let _ = self.notify.send(id);
        Ok(job)
    }

    pub fn job(&self, id: JobId) -> Result<Job> {
        get(&self.conn(), id)?.ok_or_else(|| not_found(id))
    }

    /// Newest first.
    pub fn jobs(&self, limit: usize) -> Result<Vec<Job>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs ORDER BY id DESC LIMIT ?1"
        ))?;
        let jobs = stmt
            .query_map([limit as i64], job_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(jobs)
    }

    /// How many jobs are in `state`.
    pub fn count(&self, state: JobState) -> Result<usize> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM jobs WHERE state = ?1",
            [state.as_str()],
            |r| r.get(0),
        )?;
        Ok(n as usize)
    }

    /// Moves the oldest queued job to `running` and returns it.
    pub fn claim_next(&self) -> Result<Option<Job>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let next: Option<(JobId, Option<i64>)> = tx
            .query_row(
                "SELECT id, checkpoint_step FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((id, checkpoint)) = next else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE jobs SET state = 'running', started_at_ms = COALESCE(started_at_ms, ?2) \
             WHERE id = ?1",
            params![id, now_ms()],
        )?;
        append(
            &tx,
            id,
            &JobEvent::State {
                state: JobState::Running,
                message: checkpoint
                    .map(|step| format!("resumed from the checkpoint at step {step}")),
            },
        )?;
        let job = get(&tx, id)?;
        tx.commit()?;
        drop(conn);
        let _ = self.notify.send(id);
        Ok(job)
    }

    /// After a crash: jobs left `running` go back to the queue (they resume from their
    /// checkpoint), unless a cancel was asked for, which is honoured now. Returns the ids
    /// requeued.
    pub fn recover(&self) -> Result<Vec<JobId>> {
        let ids: Vec<(JobId, bool, Option<i64>)> = {
            let conn = self.conn();
            let mut stmt = conn.prepare(
                "SELECT id, cancel_requested, checkpoint_step FROM jobs \
                 WHERE state = 'running' ORDER BY id",
            )?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?
        };
        let mut requeued = Vec::new();
        for (id, cancel, checkpoint) in ids {
            if cancel {
                self.finish(
                    id,
                    JobState::Cancelled,
                    Some("cancelled while the runner was down".into()),
                )?;
                continue;
            }
            let message = match checkpoint {
                Some(step) => {
                    format!("the runner restarted; resuming from the checkpoint at step {step}")
                }
                None => "the runner restarted before the first checkpoint; starting over".into(),
            };
            self.write(id, |tx| {
                tx.execute("UPDATE jobs SET state = 'queued' WHERE id = ?1", [id])?;
                append(
                    tx,
                    id,
                    &JobEvent::State {
                        state: JobState::Queued,
                        message: Some(message),
                    },
                )
            })?;
            requeued.push(id);
        }
        Ok(requeued)
    }

    /// Cancels a queued job at once, or asks a running one to stop.
    pub fn cancel(&self, id: JobId) -> Result<Cancelled> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let job = get(&tx, id)?.ok_or_else(|| not_found(id))?;
        let outcome = match job.state {
            JobState::Queued => {
                tx.execute(
                    "UPDATE jobs SET state = 'cancelled', finished_at_ms = ?2, cancel_requested = 1 \
                     WHERE id = ?1",
                    params![id, now_ms()],
                )?;
                append(
                    &tx,
                    id,
                    &JobEvent::State {
                        state: JobState::Cancelled,
                        message: Some("cancelled before it started".into()),
                    },
                )?;
                Cancelled::Now(get(&tx, id)?.context("job vanished")?)
            }
            JobState::Running => {
                tx.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?1", [id])?;
                Cancelled::Requested(get(&tx, id)?.context("job vanished")?)
            }
            state => {
                return Err(Error::Conflict(format!(
                    "job {id} already {}; only queued or running jobs can be cancelled",
                    state.as_str()
                )));
            }
        };
        tx.commit()?;
        drop(conn);
        let _ = self.notify.send(id);
        Ok(outcome)
    }

    /// Moves a job to a final state.
    pub fn finish(&self, id: JobId, state: JobState, message: Option<String>) -> Result<()> {
        debug_assert!(state.is_final());
        let error = (state == JobState::Failed)
            .then(|| message.clone())
            .flatten();
        self.write(id, |tx| {
            tx.execute(
                "UPDATE jobs SET state = ?2, error = ?3, finished_at_ms = ?4 WHERE id = ?1",
                params![id, state.as_str(), error, now_ms()],
            )?;
            append(tx, id, &JobEvent::State { state, message }).map(|_| ())
        })
    }

    /// Records what the job trains with, once it has started.
    pub fn set_info(&self, id: JobId, n_params: usize, device: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE jobs SET n_params = ?2, device = ?3 WHERE id = ?1",
            params![id, n_params as i64, device],
        )?;
        Ok(())
    }

    /// Logs one step and returns whether a cancel has been asked for.
    pub fn record_step(&self, id: JobId, metrics: &StepMetrics) -> Result<bool> {
        self.write(id, |tx| {
            append(tx, id, &JobEvent::Step(metrics.clone()))?;
            let cancel: bool = tx.query_row(
                "UPDATE jobs SET step = ?2 WHERE id = ?1 RETURNING cancel_requested",
                params![id, metrics.step as i64],
                |r| r.get(0),
            )?;
            Ok(cancel)
        })
    }

    pub fn cancel_requested(&self, id: JobId) -> Result<bool> {
        Ok(self.conn().query_row(
            "SELECT cancel_requested FROM jobs WHERE id = ?1",
            [id],
            |r| r.get(0),
        )?)
    }

    pub fn record_event(&self, id: JobId, event: &JobEvent) -> Result<()> {
        self.write(id, |tx| append(tx, id, event).map(|_| ()))
    }

    /// Points the job at the checkpoint now complete on disk at `step`.
    pub fn record_checkpoint(&self, id: JobId, step: usize) -> Result<()> {
        self.write(id, |tx| {
            tx.execute(
                "UPDATE jobs SET checkpoint_step = ?2 WHERE id = ?1",
                params![id, step as i64],
            )?;
            append(tx, id, &JobEvent::Checkpoint { step }).map(|_| ())
        })
    }

    /// Up to `limit` events of job `id` after sequence number `after`.
    pub fn events_after(&self, id: JobId, after: u64, limit: usize) -> Result<Vec<EventRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT seq, data FROM events WHERE job_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![id, after as i64, limit as i64], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        rows.map(|row| -> Result<EventRecord> {
            let (seq, data) = row?;
            let event = serde_json::from_str(&data)
                .with_context(|| format!("event {seq} of job {id} is not valid JSON"))?;
            Ok(EventRecord {
                seq: seq as u64,
                job_id: id,
                event,
            })
        })
        .collect()
    }

    /// The loss curve: every logged step in order.
    pub fn metrics(&self, id: JobId) -> Result<Vec<StepMetrics>> {
        self.job(id)?;
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT data FROM events WHERE job_id = ?1 AND kind = 'step' ORDER BY seq",
        )?;
        let rows = stmt.query_map([id], |r| r.get::<_, String>(0))?;
        rows.map(|data| -> Result<StepMetrics> {
            match serde_json::from_str(&data?).map_err(anyhow::Error::from)? {
                JobEvent::Step(m) => Ok(m),
                _ => Err(anyhow::anyhow!("a 'step' row of job {id} holds another event").into()),
            }
        })
        .collect()
    }
}

fn not_found(id: JobId) -> Error {
    Error::NotFound(format!("no job {id}; list jobs with GET /api/jobs"))
}

fn migrate(conn: &Connection) -> anyhow::Result<()> {
    let applied: usize =
        conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize;
    if applied > MIGRATIONS.len() {
        anyhow::bail!(
            "the database has {applied} migrations but this runner knows {}; use a newer runner",
            MIGRATIONS.len()
        );
    }
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(applied) {
        // The version bump commits with the migration, so a crash never half-applies one.
        conn.execute_batch(&format!(
            "BEGIN; {sql}\nPRAGMA user_version = {}; COMMIT;",
            i + 1
        ))
        .with_context(|| format!("applying migration {name}"))?;
    }
    Ok(())
}

/// Appends `event` to the job's history and returns its sequence number.
fn append(tx: &Connection, id: JobId, event: &JobEvent) -> Result<u64> {
    let (kind, step) = match event {
        JobEvent::State { .. } => ("state", None),
        JobEvent::Step(m) => ("step", Some(m.step as i64)),
        JobEvent::Eval { step, .. } => ("eval", Some(*step as i64)),
        JobEvent::Checkpoint { step } => ("checkpoint", Some(*step as i64)),
    };
    let seq: i64 = tx.query_row(
        "UPDATE jobs SET last_seq = last_seq + 1 WHERE id = ?1 RETURNING last_seq",
        [id],
        |r| r.get(0),
    )?;
    let data = serde_json::to_string(event).map_err(anyhow::Error::from)?;
    tx.prepare_cached(
        "INSERT INTO events (job_id, seq, kind, step, data, created_at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![id, seq, kind, step, data, now_ms()])?;
    Ok(seq as u64)
}

fn get(conn: &Connection, id: JobId) -> Result<Option<Job>> {
    Ok(conn
        .query_row(
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
            [id],
            job_from_row,
        )
        .optional()?)
}

fn job_from_row(r: &Row) -> rusqlite::Result<Job> {
    let spec: String = r.get(1)?;
    let spec: JobSpec = serde_json::from_str(&spec).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
    })?;
    let state: String = r.get(2)?;
    let state = state.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, e.into())
    })?;
    Ok(Job {
        id: r.get(0)?,
        spec,
        state,
        step: r.get::<_, i64>(3)? as usize,
        checkpoint_step: r.get::<_, Option<i64>>(4)?.map(|s| s as usize),
        n_params: r.get::<_, Option<i64>>(5)?.map(|n| n as usize),
        device: r.get(6)?,
        error: r.get(7)?,
        cancel_requested: r.get(8)?,
        created_at_ms: r.get(9)?,
        started_at_ms: r.get(10)?,
        finished_at_ms: r.get(11)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_listed_in_order() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<&str> = MIGRATIONS.iter().map(|(n, _)| *n).collect();
        assert_eq!(files, listed);
    }
}
