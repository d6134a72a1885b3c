//! Recording a training run into the registry as it goes.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use rusqlite::params;

use super::{now, Registry};
use crate::train::{EpochRecord, Observer};

/// Step metrics are written in batches: one transaction per this many steps (or per
/// [`FLUSH_INTERVAL`], whichever comes first), never one per value.
const FLUSH_STEPS: usize = 500;
const FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// A training observer that writes to the registry; also the run's heartbeat.
pub struct RegistryObserver {
    registry: Registry,
    run_id: String,
    pending: Vec<(i64, f64, f64)>,
    last_flush: Instant,
    /// The first recording error, surfaced by [`RegistryObserver::finish`]: a run whose metrics
    /// could not be saved must not look successful.
    error: Option<anyhow::Error>,
}

impl RegistryObserver {
    pub fn new(registry: Registry, run_id: &str) -> Self {
        Self {
            registry,
            run_id: run_id.to_owned(),
            pending: Vec::new(),
            last_flush: Instant::now(),
            error: None,
        }
    }

    fn keep(&mut self, result: Result<()>) {
        if let Err(e) = result {
            tracing::error!("recording run {} in the registry failed: {e:#}", self.run_id);
            self.error.get_or_insert(e);
        }
    }

    fn flush(&mut self) -> Result<()> {
        let tx = self.registry.write()?;
        {
            let mut stmt =
                tx.prepare_cached("INSERT INTO metrics (run_id, name, step, value) VALUES (?1, ?2, ?3, ?4)")?;
            for (step, loss, lr) in self.pending.drain(..) {
                stmt.execute(params![self.run_id, "train_loss", step, loss])?;
                stmt.execute(params![self.run_id, "lr", step, lr])?;
            }
        }
        tx.execute(
            "UPDATE runs SET heartbeat_at = ?2 WHERE id = ?1",
            params![self.run_id, now()],
        )?;
        tx.commit()?;
        self.last_flush = Instant::now();
        Ok(())
    }

    fn record_epoch(
        &mut self,
        r: &EpochRecord,
        checkpoint: &Path,
        samples: Option<&Path>,
        is_best: bool,
    ) -> Result<()> {
        self.flush()?;
        let size = std::fs::metadata(checkpoint).map(|m| m.len()).unwrap_or(0);
        let sha = std::fs::read_to_string(crate::train::checkpoint::sidecar(checkpoint)).unwrap_or_default();
        let tx = self.registry.write()?;
        let step = r.epoch as i64;
        let values = [
            ("epoch_train_loss", r.train_loss),
            ("test_nll", r.test.nll),
            ("test_bpd", r.test.bpd),
            ("test_bpd8", r.test.bpd8),
            ("images_per_sec", r.images_per_sec),
            ("epoch_seconds", r.seconds),
            ("peak_rss_mb", peak_rss_mb()),
        ];
        for (name, value) in values {
            tx.execute(
                "INSERT INTO metrics (run_id, name, step, epoch, value) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![self.run_id, name, step, r.epoch, value],
            )?;
        }
        if is_best {
            tx.execute(
                "UPDATE checkpoints SET is_best = 0 WHERE run_id = ?1",
                [&self.run_id],
            )?;
        }
        tx.execute(
            "INSERT INTO checkpoints (run_id, path, size, sha256, epoch, is_best, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                self.run_id,
                checkpoint.display().to_string(),
                size as i64,
                sha.trim(),
                r.epoch,
                is_best,
                now()
            ],
        )?;
        if let Some(s) = samples {
            tx.execute(
                "INSERT INTO samples (run_id, path, epoch, labels, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    self.run_id,
                    s.display().to_string(),
                    r.epoch,
                    "0..9 cycling",
                    now()
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Writes what is still buffered and returns the registry, or the first recording error.
    pub fn finish(mut self) -> Result<Registry> {
        let flushed = self.flush();
        self.keep(flushed);
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.registry),
        }
    }
}

impl RegistryObserver {
    /// Re-records the epochs a resumed checkpoint has done, replacing whatever the registry had:
    /// a crash between writing a checkpoint and recording its epoch must not leave a gap.
    pub fn replay(&mut self, state: &crate::train::TrainState, run: &crate::run_dir::RunDir) -> Result<()> {
        {
            let tx = self.registry.write()?;
            tx.execute(
                "DELETE FROM metrics WHERE run_id = ?1 AND epoch IS NOT NULL",
                [&self.run_id],
            )?;
            tx.execute("DELETE FROM checkpoints WHERE run_id = ?1", [&self.run_id])?;
            tx.execute("DELETE FROM samples WHERE run_id = ?1", [&self.run_id])?;
            tx.commit()?;
        }
        for r in &state.history {
            let ckpt = run.epoch_checkpoint(r.epoch);
            let samples = run.epoch_samples(r.epoch);
            let is_best = state.best_epoch == Some(r.epoch);
            self.record_epoch(r, &ckpt, samples.exists().then_some(samples.as_path()), is_best)?;
        }
        Ok(())
    }
}

impl Observer for RegistryObserver {
    fn before_checkpoint(&mut self) {
        let r = self.flush();
        self.keep(r);
    }

    fn on_step(&mut self, step: i64, loss: f64, lr: f64) {
        self.pending.push((step, loss, lr));
        if self.pending.len() >= FLUSH_STEPS || self.last_flush.elapsed() >= FLUSH_INTERVAL {
            let r = self.flush();
            self.keep(r);
        }
    }

    fn on_epoch(&mut self, record: &EpochRecord, checkpoint: &Path, samples: Option<&Path>, is_best: bool) {
        let r = self.record_epoch(record, checkpoint, samples, is_best);
        self.keep(r);
    }
}

/// This process's peak resident memory in MiB (`VmHWM`), 0 where unknown.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
