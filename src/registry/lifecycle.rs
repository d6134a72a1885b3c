//! A run's life after it is added: claimed by a worker, its status changed, reset by `--force`,
//! recovered when its worker is gone.

use anyhow::Result;
use rusqlite::params;

use super::{Registry, RunStatus};
use crate::host::{hostname, now};

impl Registry {
    /// unfinished state to `running`. Returns false when someone else holds it or it is done.
    /// `pid` is the process that trains it (None until known, e.g. a Slurm job's).
    pub fn claim_run(&mut self, id: &str, device: &str, pid: Option<u32>) -> Result<bool> {
        let tx = self.write()?;
        let changed = tx.execute(
            "UPDATE runs SET status = 'running', device = ?2, host = ?3, pid = ?4, job_id = NULL,
                 attempts = attempts + 1, heartbeat_at = ?5, finished_at = NULL, error = NULL
             WHERE id = ?1 AND status IN ('queued', 'interrupted', 'failed')",
            params![id, device, hostname(), pid.unwrap_or(std::process::id()), now()],
        )?;
        tx.commit()?;
        Ok(changed == 1)
    }

    /// Records the process or Slurm job that trains a claimed run, with a `launched` event.
    pub fn set_worker(&mut self, id: &str, pid: Option<u32>, job: Option<&str>, place: &str) -> Result<()> {
        let tx = self.write()?;
        tx.execute(
            "UPDATE runs SET pid = ?2, job_id = ?3 WHERE id = ?1",
            params![id, pid, job],
        )?;
        let who = match (job, pid) {
            (Some(job), _) => format!("Slurm job {job}"),
            (None, Some(pid)) => format!("worker pid {pid} on {place}"),
            (None, None) => place.to_owned(),
        };
        tx.execute(
            "INSERT INTO run_events (run_id, status, at, detail) VALUES (?1, 'launched', ?2, ?3)",
            params![id, now(), who],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Moves a run to `status`, with an optional error or note.
    pub fn set_status(&mut self, id: &str, status: RunStatus, detail: Option<&str>) -> Result<()> {
        let tx = self.write()?;
        set_status_in(&tx, id, status, detail, &now())?;
        tx.commit()?;
        Ok(())
    }

    /// Records an event of a run that is not a change of status (e.g. a pruner's decision).
    pub fn add_event(&mut self, id: &str, kind: &str, detail: &str) -> Result<()> {
        let tx = self.write()?;
        tx.execute(
            "INSERT INTO run_events (run_id, status, at, detail) VALUES (?1, ?2, ?3, ?4)",
            params![id, kind, now(), detail],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Marks an imported run complete, with its weights as its best checkpoint.
    pub fn record_import(&mut self, id: &str, checkpoint: &str, source: &str) -> Result<()> {
        let tx = self.write()?;
        let at = now();
        tx.execute(
            "INSERT INTO checkpoints (run_id, path, size, sha256, epoch, is_best, created_at)
             VALUES (?1, ?2, 0, '', 0, 1, ?3)",
            params![id, checkpoint, at],
        )?;
        tx.execute(
            "UPDATE runs SET status = 'completed', started_at = ?2, finished_at = ?2 WHERE id = ?1",
            params![id, at],
        )?;
        tx.execute(
            "INSERT INTO run_events (run_id, status, at, detail) VALUES (?1, 'completed', ?2, ?3)",
            params![id, at, format!("imported from {source}")],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Forgets a run's results so it trains again from scratch (`--force`).
    pub fn reset_run(&mut self, id: &str) -> Result<()> {
        let tx = self.write()?;
        for table in ["metrics", "checkpoints", "samples", "run_results"] {
            tx.execute(&format!("DELETE FROM {table} WHERE run_id = ?1"), [id])?;
        }
        super::results::refresh_results(&tx, id)?;
        tx.execute(
            "UPDATE runs SET status = 'queued', error = NULL, started_at = NULL, finished_at = NULL, pid = NULL,
                 job_id = NULL, journal_offset = 0, epoch = NULL, step_in_epoch = NULL, images_per_sec = NULL,
                 precision = NULL
             WHERE id = ?1",
            [id],
        )?;
        tx.execute(
            "INSERT INTO run_events (run_id, status, at, detail) VALUES (?1, 'queued', ?2, 'forced rerun')",
            params![id, now()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Runs recorded as `running` on this host whose process is gone, marked `interrupted` so
    /// they continue. Runs held by a live process, on another host, or in a Slurm job are left
    /// to whoever holds them. Returns the recovered ids.
    pub fn recover_stale(&mut self, experiment: Option<&str>) -> Result<Vec<String>> {
        let ids: Vec<String> = {
            let mut stmt = self.conn.prepare(
                "SELECT r.id FROM runs r JOIN experiments e ON e.id = r.experiment_id
                 WHERE r.status = 'running' AND (?1 IS NULL OR e.name = ?1)",
            )?;
            let rows = stmt.query_map([experiment], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut stale = Vec::new();
        for id in ids {
            if self.run(&id)?.is_some_and(|r| r.process_gone()) {
                self.set_status(&id, RunStatus::Interrupted, Some("worker gone (recovered)"))?;
                stale.push(id);
            }
        }
        Ok(stale)
    }
}

/// Sets a run's status inside a transaction, with its event.
pub(super) fn set_status_in(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    status: RunStatus,
    detail: Option<&str>,
    at: &str,
) -> Result<()> {
    tx.execute(
        "UPDATE runs SET status = ?2, error = ?3, finished_at = CASE WHEN ?4 THEN ?5 ELSE finished_at END,
             pid = CASE WHEN ?2 = 'running' THEN pid ELSE NULL END,
             epoch = CASE WHEN ?2 = 'running' THEN epoch ELSE NULL END
         WHERE id = ?1",
        params![
            id,
            status.as_str(),
            detail.filter(|_| status != RunStatus::Completed),
            status.is_final(),
            at
        ],
    )?;
    tx.execute(
        "INSERT INTO run_events (run_id, status, at, detail) VALUES (?1, ?2, ?3, ?4)",
        params![id, status.as_str(), at, detail],
    )?;
    Ok(())
}
