//! Each turn's first step: read what the active runs journalled into the registry, and answer a
//! pruner's question for every epoch that finished short of a run's end.

use anyhow::Result;

use super::state::Coordinator;
use crate::journal;
use crate::registry::{Ingested, RunStatus};

impl Coordinator<'_> {
    /// Ingests one run's journal. A journal that cannot be read (replaced by a folder, no
    /// permission) fails its own run, with the cause, rather than stopping the sweep: the other
    /// runs go on and later runs of the file still start. A run already finished keeps its
    /// status, so that nothing recorded is trained again.
    pub(super) fn ingest_run(&mut self, id: &str) -> Result<Ingested> {
        let err = match self.registry.ingest(id, &self.run_dir(id).root) {
            Err(e) if e.downcast_ref::<journal::Unreadable>().is_some() => e,
            other => return other,
        };
        let cause = format!("{err:#}");
        match self.registry.run(id)?.map(|r| (r.status, r.error)) {
            Some((status, error)) if !status.is_final() || status == RunStatus::Failed => {
                if error.as_deref() != Some(cause.as_str()) {
                    tracing::error!("run {id}: {cause}");
                    self.registry.set_status(id, RunStatus::Failed, Some(&cause))?;
                }
            }
            _ => tracing::warn!("run {id}: {cause}"),
        }
        Ok(Default::default())
    }

    /// Reads what the active runs journalled; answers a pruner's question for every epoch that
    /// finished short of a run's end.
    pub(super) fn ingest(&mut self) -> Result<()> {
        let ids: Vec<String> = self.active.keys().cloned().collect();
        for id in ids {
            let news = self.ingest_run(&id)?;
            if news.events == 0 {
                continue;
            }
            if let Some(p) = self.registry.progress(&id)? {
                // A worker that resumed at an epoch boundary asks about that epoch again: a
                // coordinator that died before answering left it unanswered.
                if news.started && p.epoch > 1 {
                    self.answer(&id, p.epoch - 1)?;
                }
                self.observer.progress(&id, &p);
            }
            if let Some(place) = self.backend.whereabouts(&id) {
                self.observer.place(&id, &place);
            }
            for epoch in news.epochs {
                let bpd8 = self
                    .registry
                    .metric_history(&id)?
                    .iter()
                    .find(|m| m.name == "test_bpd8" && m.epoch == Some(epoch as i64))
                    .map(|m| m.value);
                self.observer.epoch(&id, epoch, bpd8);
                self.answer(&id, epoch)?;
            }
        }
        Ok(())
    }

    /// The pruner's decision for a run that finished `epoch`, written for its worker and kept in
    /// the run's events.
    fn answer(&mut self, id: &str, epoch: u32) -> Result<()> {
        if !self.experiment.pruner.is_active() {
            return Ok(());
        }
        let Some(active) = self.active.get_mut(id) else {
            return Ok(());
        };
        let epochs = active.config.epochs;
        if epoch >= epochs || !active.decided.insert(epoch) {
            return Ok(());
        }
        let judged = self.study.decide(&self.registry, id, epoch, epochs)?;
        let decision = judged.clone().unwrap_or_else(|| journal::Decision {
            epoch,
            prune: false,
            rule: "no rung".into(),
            detail: format!("no rule applies at epoch {epoch}"),
        });
        journal::write_decision(&self.run_dir(id).root, &decision)?;
        // Only the epochs a rule judged go into the run's history.
        if judged.is_some() {
            let verdict = if decision.prune { "prune" } else { "continue" };
            self.registry.add_event(
                id,
                "decision",
                &format!(
                    "{verdict} after epoch {epoch}: {} ({})",
                    decision.rule, decision.detail
                ),
            )?;
        }
        Ok(())
    }
}
