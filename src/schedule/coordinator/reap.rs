//! Each turn's second step: settle the runs whose workers ended, from their journals, or from
//! how the backend saw the worker end when the journal does not say; retry failures.

use anyhow::{Context, Result};

use super::state::Coordinator;
use crate::registry::RunStatus;
use crate::schedule::backend::Ended;

impl Coordinator<'_> {
    /// Settles the runs whose workers ended.
    pub(super) fn reap(&mut self) -> Result<()> {
        for ended in self.backend.reap()? {
            let id = ended.run_id.clone();
            self.ingest_run(&id)?;
            if self.active.remove(&id).is_none() {
                continue;
            }
            let (status, detail) = self.settle(&ended)?;
            let starts = self.starts.get(&id).copied().unwrap_or(0);
            let retry = status == RunStatus::Failed
                && starts <= self.experiment.scheduler.retries
                && !ended.busy
                && !self.interrupted;
            if retry {
                self.observer.note(&format!(
                    "{id} failed; retrying ({starts}/{}): {}",
                    self.experiment.scheduler.retries,
                    detail.as_deref().unwrap_or("")
                ));
                self.queue.push_front(id.clone());
            } else {
                self.count(status);
            }
            self.observer.finished(
                &id,
                status,
                detail.as_deref().filter(|_| status != RunStatus::Completed),
            );
        }
        Ok(())
    }

    /// How an ended worker's run stands: as it journalled, or, when it ended without saying how
    /// (it died, or never took the run), interrupted if it can resume and failed otherwise.
    fn settle(&mut self, ended: &Ended) -> Result<(RunStatus, Option<String>)> {
        let id = &ended.run_id;
        let row = self
            .registry
            .run(id)?
            .with_context(|| format!("run {id} vanished from the registry"))?;
        if row.status != RunStatus::Running {
            return Ok((row.status, row.error));
        }
        let dir = self.run_dir(id);
        let resumable = ended.busy || ended.cancelled || self.interrupted;
        let why = if ended.busy {
            "its folder is held by another process".to_owned()
        } else if resumable {
            format!("stopped before it finished ({})", ended.cause)
        } else if !dir.root.is_dir() {
            format!(
                "its run folder {} was deleted while it ran; the worker ended ({})",
                dir.root.display(),
                ended.cause
            )
        } else {
            format!(
                "worker ended without finishing ({}); its log is in {}",
                ended.cause,
                dir.root.display()
            )
        };
        let status = if resumable {
            RunStatus::Interrupted
        } else {
            RunStatus::Failed
        };
        self.registry.set_status(id, status, Some(&why))?;
        Ok((status, Some(why)))
    }

    /// Counts a settled run in the sweep's summary.
    fn count(&mut self, status: RunStatus) {
        match status {
            RunStatus::Completed => self.summary.completed += 1,
            RunStatus::Diverged => self.summary.diverged += 1,
            RunStatus::Pruned => self.summary.pruned += 1,
            RunStatus::Failed => self.summary.failed += 1,
            RunStatus::Interrupted | RunStatus::Running | RunStatus::Queued => self.summary.interrupted += 1,
        }
    }
}
