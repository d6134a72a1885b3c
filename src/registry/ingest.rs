//! Ingesting a run's journal: applying the events a worker appended since the last read, in one
//! transaction together with the new read offset, so a crash at any point neither loses nor
//! repeats anything.

use std::path::Path;

use anyhow::Result;
use rusqlite::{params, Transaction};

use super::lifecycle::set_status_in;
use super::{Registry, RunStatus};
use crate::journal::{self, EpochRecord, Event};
use crate::precision::Precision;

/// What one ingest found, for the coordinator.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Ingested {
    /// Events applied.
    pub events: usize,
    /// Epochs that finished (in order).
    pub epochs: Vec<u32>,
    /// A worker (re)started the run.
    pub started: bool,
    /// How the worker left the run, when it said so.
    pub finished: Option<(RunStatus, Option<String>)>,
}

impl Registry {
    /// Applies what the journal in `run_dir` holds beyond what was already ingested.
    pub fn ingest(&mut self, run_id: &str, run_dir: &Path) -> Result<Ingested> {
        let offset: i64 =
            self.conn()
                .query_row("SELECT journal_offset FROM runs WHERE id = ?1", [run_id], |r| {
                    r.get(0)
                })?;
        let read = journal::read_from(run_dir, offset.max(0) as u64)?;
        let mut out = Ingested::default();
        if read.offset == offset as u64 && read.events.is_empty() {
            return Ok(out);
        }
        let tx = self.write()?;
        for (at, event) in read.events {
            apply(&tx, run_id, &at, event, &mut out)?;
            out.events += 1;
        }
        tx.execute(
            "UPDATE runs SET journal_offset = ?2 WHERE id = ?1",
            params![run_id, read.offset as i64],
        )?;
        // Only epoch records (and a restart, which drops what came after its checkpoint) change
        // the results; step batches, far more frequent, do not.
        if out.started || !out.epochs.is_empty() {
            super::results::refresh_results(&tx, run_id)?;
        }
        tx.commit()?;
        Ok(out)
    }
}

/// Inserts an epoch's metrics (NaN values, which SQLite would store as NULL, are left out).
fn insert_epoch(
    tx: &Transaction<'_>,
    run_id: &str,
    r: &EpochRecord,
    peak_rss_mb: Option<f64>,
    threads: Option<u32>,
) -> Result<()> {
    tx.execute(
        "DELETE FROM metrics WHERE run_id = ?1 AND epoch = ?2",
        params![run_id, r.epoch],
    )?;
    let values = [
        ("epoch_train_loss", Some(r.train_loss)),
        ("test_nll", Some(r.test.nll)),
        ("test_bpd", Some(r.test.bpd)),
        ("test_bpd8", Some(r.test.bpd8)),
        ("images_per_sec", Some(r.images_per_sec)),
        ("epoch_seconds", Some(r.seconds)),
        ("peak_rss_mb", peak_rss_mb),
        ("torch_threads", threads.map(f64::from)),
    ];
    let mut stmt = tx.prepare_cached(
        "INSERT INTO metrics (run_id, name, step, epoch, value) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (run_id, name, step) DO UPDATE SET epoch = excluded.epoch, value = excluded.value",
    )?;
    for (name, value) in values {
        if let Some(v) = value.filter(|v| !v.is_nan()) {
            stmt.execute(params![run_id, name, r.epoch as i64, r.epoch, v])?;
        }
    }
    Ok(())
}

fn apply(tx: &Transaction<'_>, run_id: &str, at: &str, event: Event, out: &mut Ingested) -> Result<()> {
    match event {
        Event::Started {
            pid,
            host,
            device,
            job,
            checkpoint,
            epochs_done,
            global_step,
            steps_per_epoch,
            history,
            precision,
        } => {
            let worker = Worker {
                pid,
                host,
                device,
                job,
                precision,
            };
            let from = checkpoint.map_or("from the start".to_owned(), |c| format!("from {c}"));
            forget_past(tx, run_id, epochs_done, global_step, &history)?;
            started(tx, run_id, at, &worker, &from, epochs_done + 1, steps_per_epoch)?;
            out.started = true;
        }
        Event::Steps {
            epoch,
            step_in_epoch,
            steps_per_epoch,
            images_per_sec,
            steps,
        } => {
            insert_steps(tx, run_id, &steps)?;
            tx.execute(
                "UPDATE runs SET heartbeat_at = ?2, epoch = ?3, step_in_epoch = ?4, steps_per_epoch = ?5,
                     images_per_sec = ?6, progress_at = ?2
                 WHERE id = ?1",
                params![run_id, at, epoch, step_in_epoch, steps_per_epoch, images_per_sec],
            )?;
        }
        Event::Epoch {
            record,
            checkpoint,
            best,
            peak_rss_mb,
            threads,
        } => {
            insert_epoch(tx, run_id, &record, peak_rss_mb, threads)?;
            insert_checkpoint(tx, run_id, at, record.epoch, &checkpoint, best)?;
            tx.execute(
                "UPDATE runs SET heartbeat_at = ?2, epoch = ?3, step_in_epoch = 0, progress_at = ?2 WHERE id = ?1",
                params![run_id, at, record.epoch + 1],
            )?;
            out.epochs.push(record.epoch);
        }
        Event::Samples { epoch, file } => {
            tx.execute(
                "DELETE FROM samples WHERE run_id = ?1 AND epoch = ?2",
                params![run_id, epoch],
            )?;
            tx.execute(
                "INSERT INTO samples (run_id, path, epoch, labels, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![run_id, format!("samples/{file}"), epoch, "0..9 cycling", at],
            )?;
        }
        Event::Checkpoint { .. } => {
            tx.execute(
                "UPDATE runs SET heartbeat_at = ?2 WHERE id = ?1",
                params![run_id, at],
            )?;
        }
        Event::Finished { status, detail } => {
            let status = RunStatus::from(status);
            set_status_in(tx, run_id, status, detail.as_deref(), at)?;
            out.finished = Some((status, detail));
        }
    }
    Ok(())
}

/// The process a `started` event says trains the run.
struct Worker {
    pid: u32,
    host: String,
    device: String,
    job: Option<String>,
    /// What it trains in (None from workers that did not say).
    precision: Option<Precision>,
}

/// A worker (re)started from the checkpoint after `epochs_done` epochs: whatever was recorded
/// past it will be recorded again; whatever the checkpoint has done (`history`) must be there.
fn forget_past(
    tx: &Transaction<'_>,
    run_id: &str,
    epochs_done: u32,
    global_step: i64,
    history: &[EpochRecord],
) -> Result<()> {
    tx.execute(
        "DELETE FROM metrics WHERE run_id = ?1 AND ((epoch IS NULL AND step > ?3) OR epoch > ?2)",
        params![run_id, epochs_done, global_step],
    )?;
    tx.execute(
        "DELETE FROM checkpoints WHERE run_id = ?1 AND epoch > ?2",
        params![run_id, epochs_done],
    )?;
    tx.execute(
        "DELETE FROM samples WHERE run_id = ?1 AND epoch > ?2",
        params![run_id, epochs_done],
    )?;
    for r in history {
        let present: i64 = tx.query_row(
            "SELECT COUNT(*) FROM metrics WHERE run_id = ?1 AND epoch = ?2 AND name = 'test_bpd8'",
            params![run_id, r.epoch],
            |row| row.get(0),
        )?;
        if present == 0 {
            insert_epoch(tx, run_id, r, None, None)?;
        }
    }
    Ok(())
}

/// Marks the run `running` under `worker`, training `epoch`, with its event.
fn started(
    tx: &Transaction<'_>,
    run_id: &str,
    at: &str,
    worker: &Worker,
    from: &str,
    epoch: u32,
    steps_per_epoch: i64,
) -> Result<()> {
    let Worker {
        pid,
        host,
        device,
        job,
        precision,
    } = worker;
    let precision = precision.map(Precision::as_str);
    tx.execute(
        "UPDATE runs SET status = 'running', device = ?2, host = ?3, pid = ?4, job_id = COALESCE(?5, job_id),
             heartbeat_at = ?6, started_at = COALESCE(started_at, ?6), finished_at = NULL, error = NULL,
             epoch = ?7, step_in_epoch = 0, steps_per_epoch = ?8, images_per_sec = NULL, progress_at = ?6,
             precision = COALESCE(?9, precision)
         WHERE id = ?1",
        params![
            run_id,
            device,
            host,
            pid,
            job,
            at,
            epoch,
            steps_per_epoch,
            precision
        ],
    )?;
    let device = match precision {
        Some(p) => format!("{device}, {p}"),
        None => device.clone(),
    };
    tx.execute(
        "INSERT INTO run_events (run_id, status, at, detail) VALUES (?1, 'running', ?2, ?3)",
        params![run_id, at, format!("pid {pid} on {host}, {device}, {from}")],
    )?;
    Ok(())
}

/// A batch of steps' training loss and learning rate. A step recorded before (a worker resumed
/// from a checkpoint older than the steps an earlier attempt journalled) takes the value
/// measured last: never twice.
fn insert_steps(tx: &Transaction<'_>, run_id: &str, steps: &[journal::StepRecord]) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO metrics (run_id, name, step, value) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (run_id, name, step) DO UPDATE SET value = excluded.value",
    )?;
    // SQLite stores NaN as NULL, which the column refuses: an undefined value (the journal's
    // `null`) is left out rather than wedging ingestion.
    for s in steps {
        for (name, value) in [("train_loss", s.1), ("lr", s.2)] {
            if !value.is_nan() {
                stmt.execute(params![run_id, name, s.0, value])?;
            }
        }
    }
    Ok(())
}

/// An epoch's checkpoint; a new best one takes the mark from the previous best.
fn insert_checkpoint(
    tx: &Transaction<'_>,
    run_id: &str,
    at: &str,
    epoch: u32,
    checkpoint: &journal::CheckpointRecord,
    best: bool,
) -> Result<()> {
    if best {
        tx.execute("UPDATE checkpoints SET is_best = 0 WHERE run_id = ?1", [run_id])?;
    }
    tx.execute(
        "DELETE FROM checkpoints WHERE run_id = ?1 AND epoch = ?2",
        params![run_id, epoch],
    )?;
    tx.execute(
        "INSERT INTO checkpoints (run_id, path, size, sha256, epoch, is_best, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            run_id,
            format!("checkpoints/{}", checkpoint.file),
            checkpoint.size as i64,
            checkpoint.sha256,
            epoch,
            best,
            at
        ],
    )?;
    Ok(())
}
