//! Before the loop: register the experiment and its runs, catch up with what workers of an
//! earlier coordinator journalled, re-attach to live ones, recover the runs nobody watches any
//! more, and order (queue) what is unfinished.

use std::collections::HashMap;

use anyhow::{Context, Result};

use super::state::{Active, Coordinator};
use crate::registry::{RunStatus, TrialRow};
use crate::schedule::observer::{SweepPlan, Work};

impl Coordinator<'_> {
    /// Registers the experiment and its runs, catches up with what workers of an earlier
    /// coordinator journalled, re-attaches to live ones, and queues what is unfinished.
    pub(super) fn prepare(&mut self) -> Result<()> {
        self.register()?;
        let e = self.experiment;
        let rows = self.registry.trial_rows(&e.info.name, &e.pruner.metric)?;
        // Journals first: a worker of an earlier coordinator may have finished since.
        for row in &rows {
            self.ingest_run(&row.id)?;
        }
        let jobs = self.reattach(&rows)?;
        self.recover(&jobs)?;
        let plan = self.order()?;
        self.observer.planned(&plan);
        let ids: Vec<String> = self.active.keys().cloned().collect();
        for id in ids {
            let place = self
                .backend
                .whereabouts(&id)
                .unwrap_or_else(|| self.backend.name().into());
            let config = &self.active[&id].config;
            self.observer
                .started(&id, &place, config.epochs, config.images_per_epoch());
        }
        Ok(())
    }

    /// Records the experiment and every run of its grid (queued, unless recorded before).
    fn register(&mut self) -> Result<()> {
        let e = self.experiment;
        let experiment_id = self
            .registry
            .upsert_experiment(&e.info, Some(&e.file), e.search.method)?;
        for spec in &e.runs {
            self.registry.add_run(
                experiment_id,
                &spec.id,
                &spec.config,
                &self.run_dir(&spec.id).root,
                None,
            )?;
        }
        Ok(())
    }

    /// Takes over the live workers of an earlier coordinator; returns every run recorded as
    /// running in a job, with its job, taken over or not.
    fn reattach(&mut self, rows: &[TrialRow]) -> Result<Vec<(String, String)>> {
        let jobs: Vec<(String, String)> = rows
            .iter()
            .filter_map(|r| {
                let row = self.registry.run(&r.id).ok()??;
                (row.status == RunStatus::Running).then_some(())?;
                Some((r.id.clone(), row.job?))
            })
            .collect();
        for id in self.backend.reattach(&jobs)? {
            let row = self.registry.run(&id)?.context("a re-attached run vanished")?;
            self.observer.note(&format!(
                "{id}: re-attached to {} ({})",
                row.holder(),
                self.backend.name()
            ));
            self.active.insert(id, Active::new(row.config));
        }
        Ok(jobs)
    }

    /// Settles the runs left running by processes that are gone, and the `jobs` an earlier
    /// coordinator started that ended unseen: their journals say how they ended, or else they
    /// are interrupted and continue.
    fn recover(&mut self, jobs: &[(String, String)]) -> Result<()> {
        let e = self.experiment;
        for id in self.registry.recover_stale(Some(&e.info.name))? {
            tracing::warn!("run {id} was left running by a process that is gone; it will continue");
        }
        for (id, _) in jobs {
            if self.active.contains_key(id) {
                continue;
            }
            self.ingest_run(id)?;
            if self
                .registry
                .run(id)?
                .is_some_and(|r| r.status == RunStatus::Running)
            {
                self.registry.set_status(
                    id,
                    RunStatus::Interrupted,
                    Some("its job ended while no coordinator watched"),
                )?;
            }
        }
        Ok(())
    }

    /// The experiment's runs in the order they start: an adaptive search's trials by number,
    /// else the grid's order (runs of the experiment no longer in its file are left out).
    fn ordered<'r>(&self, rows: &'r [TrialRow]) -> Vec<&'r TrialRow> {
        let e = self.experiment;
        let mut ordered: Vec<&TrialRow> = rows.iter().collect();
        if e.search.method.is_adaptive() {
            ordered.retain(|r| r.trial.is_some());
            ordered.sort_by_key(|r| r.trial);
        } else {
            let order: HashMap<&str, usize> = e
                .runs
                .iter()
                .enumerate()
                .map(|(i, r)| (r.id.as_str(), i))
                .collect();
            ordered.retain(|r| order.contains_key(r.id.as_str()));
            ordered.sort_by_key(|r| order[r.id.as_str()]);
        }
        ordered
    }

    /// Queues the unfinished runs in order (resetting them all under `--force`), counts the
    /// finished ones, and plans the sweep's work: the epochs left of every run, and a study's
    /// proposals to come.
    fn order(&mut self) -> Result<SweepPlan> {
        let e = self.experiment;
        let rows = self.registry.trial_rows(&e.info.name, &e.pruner.metric)?;
        let mut plan = SweepPlan {
            slots: self.capacity(),
            ..SweepPlan::default()
        };
        for row in self.ordered(&rows) {
            self.order_run(row, &mut plan)?;
        }
        if e.search.method.is_adaptive() {
            self.plan_proposals(&rows, &mut plan);
        }
        Ok(plan)
    }

    /// Queues one run if it is unfinished, and adds its epochs to the plan.
    fn order_run(&mut self, row: &TrialRow, plan: &mut SweepPlan) -> Result<()> {
        let Some(run) = self.registry.run(&row.id)? else {
            return Ok(());
        };
        // An invalid trial was never trained and never will be: nothing to queue or force.
        if crate::census::is_invalid(&run.config) {
            self.summary.invalid += 1;
            return Ok(());
        }
        let epochs = run.config.epochs as u64;
        plan.total_epochs += epochs;
        let mut status = run.status;
        if self.opts.force && status != RunStatus::Running {
            self.registry.reset_run(&row.id)?;
            let _ = std::fs::remove_dir_all(self.run_dir(&row.id).root);
            status = RunStatus::Queued;
        }
        let trained = if status == RunStatus::Queued {
            0
        } else {
            row.values.len() as u64
        };
        let active = self.active.contains_key(&row.id);
        if active || status.is_unfinished() {
            if !active {
                self.queue.push_back(row.id.clone());
            }
            plan.done_epochs += trained;
            let left = epochs.saturating_sub(trained);
            plan.remaining.epochs += left;
            plan.remaining.images += left * run.config.images_per_epoch() as u64;
        } else {
            plan.done_epochs += epochs;
            self.summary.skipped += 1;
        }
        Ok(())
    }

    /// A study's proposals to come: the budget left, at the base config's size.
    fn plan_proposals(&self, rows: &[TrialRow], plan: &mut SweepPlan) {
        let e = self.experiment;
        self.study.warn_if_changed(rows);
        let mut left = e
            .search
            .trials
            .unwrap_or(0)
            .saturating_sub(rows.iter().filter(|r| r.trial.is_some()).count());
        // A small space ends the study once each valid configuration is tried.
        if let Some(valid) = crate::census::census(e, false).and_then(|c| c.valid_ids) {
            left = left.min(
                valid
                    .iter()
                    .filter(|id| rows.iter().all(|r| &r.id != *id))
                    .count(),
            );
        }
        let epochs = left as u64 * e.base.epochs as u64;
        plan.total_epochs += epochs;
        plan.remaining = Work {
            epochs: plan.remaining.epochs + epochs,
            images: plan.remaining.images + epochs * e.base.images_per_epoch() as u64,
        };
    }
}
