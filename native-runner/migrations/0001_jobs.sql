-- Jobs and their event history. The runner applies the files of this folder in name order
-- and records the count in `PRAGMA user_version`.

CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The JobSpec as submitted (JSON).
    spec             TEXT    NOT NULL,
    state            TEXT    NOT NULL
        CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    error            TEXT,
    -- Last step logged, and the step of the newest checkpoint on disk.
    step             INTEGER NOT NULL DEFAULT 0,
    checkpoint_step  INTEGER,
    n_params         INTEGER,
    device           TEXT,
    -- Sequence number of the job's last event.
    last_seq         INTEGER NOT NULL DEFAULT 0,
    created_at_ms    INTEGER NOT NULL,
    started_at_ms    INTEGER,
    finished_at_ms   INTEGER
);

CREATE INDEX jobs_by_state ON jobs (state, id);

-- Everything that happened to a job, in order: state changes, one row per logged step
-- (the metrics a late page replays), evaluations, checkpoints.
CREATE TABLE events (
    job_id        INTEGER NOT NULL REFERENCES jobs (id),
    seq           INTEGER NOT NULL,
    kind          TEXT    NOT NULL,
    -- The optimizer step for 'step' events, so the loss curve is one indexed scan.
    step          INTEGER,
    -- The JobEvent (JSON).
    data          TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
