//! Each turn's last step: start runs on free slots, the queue's first, then (adaptive search)
//! the study's proposals.

use anyhow::Result;

use super::state::{Active, Coordinator};
use crate::config::{Experiment, RunConfig};
use crate::registry::RunStatus;
use crate::run_dir::RunDir;
use crate::schedule::backend::Launch;
use crate::schedule::study::Proposal;

impl Coordinator<'_> {
    /// Starts runs on free slots.
    pub(super) fn fill(&mut self) -> Result<()> {
        while self.active.len() < self.capacity() {
            let Some((id, config)) = self.next_run()? else {
                break;
            };
            if !self.registry.claim_run(&id, "", None)? {
                let holder = self.registry.run(&id)?.map(|r| r.holder()).unwrap_or_default();
                self.observer.note(&format!("{id} is held by {holder}; skipped"));
                continue;
            }
            *self.starts.entry(id.clone()).or_default() += 1;
            self.start(&id, &config)?;
            self.active.insert(id, Active::new(config));
        }
        Ok(())
    }

    /// Starts the worker of a claimed run. A run that cannot start goes back to the queue, not
    /// left `running`.
    fn start(&mut self, id: &str, config: &RunConfig) -> Result<()> {
        let not_started = |c: &mut Self, e: &anyhow::Error| {
            c.registry
                .set_status(id, RunStatus::Queued, Some(&format!("could not start: {e:#}")))
        };
        if let Err(e) = RunDir::create(&self.opts.runs_dir, id, config) {
            not_started(self, &e)?;
            return Err(e.context(format!("preparing the folder of run {id}")));
        }
        let launch = Launch {
            run_id: id.to_owned(),
            device: config.device.clone(),
            ask_before_epoch: self.experiment.pruner.is_active(),
        };
        let started = match self.backend.start(&launch) {
            Ok(s) => s,
            Err(e) => {
                not_started(self, &e)?;
                return Err(e.context(format!(
                    "starting run {id} on the {} backend",
                    self.backend.name()
                )));
            }
        };
        self.registry
            .set_worker(id, started.pid, started.job.as_deref(), &started.device)?;
        self.observer
            .started(id, &started.device, config.epochs, config.images_per_epoch());
        Ok(())
    }

    /// The next run to start: the queue's head, else (adaptive search) a new proposal.
    fn next_run(&mut self) -> Result<Option<(String, RunConfig)>> {
        while let Some(id) = self.queue.pop_front() {
            let Some(row) = self.registry.run(&id)? else {
                continue;
            };
            if row.status.is_unfinished() {
                return Ok(Some((id, row.config)));
            }
        }
        while let Some(p) = self.study.suggest(&self.registry)? {
            if self.record_proposal(&p)? {
                return Ok(Some((p.id, p.config)));
            }
        }
        Ok(None)
    }

    /// Records a study's proposal as a run; false for one that cannot be run (invalid).
    fn record_proposal(&mut self, p: &Proposal) -> Result<bool> {
        let e = self.experiment;
        let experiment_id = self
            .registry
            .upsert_experiment(&e.info, Some(&e.file), e.search.method)?;
        let dir = self.run_dir(&p.id).root;
        let described = describe_trial(&p.config, e);
        if let Some(why) = &p.invalid {
            // As in Optuna, a proposal that cannot be run is a failed trial: it counts
            // toward the budget, the sampler ranks it worst, and the study goes on.
            let error = format!("invalid configuration: {why}");
            self.registry
                .add_invalid_trial(experiment_id, &p.id, &p.config, &dir, p.number, &error)?;
            self.summary.invalid += 1;
            self.observer.untrained(
                &format!(
                    "trial {}: run {} ({described}) not trained: {error}; recorded as a failed trial",
                    p.number, p.id
                ),
                p.config.epochs,
                p.config.images_per_epoch(),
            );
            return Ok(false);
        }
        self.registry
            .add_run(experiment_id, &p.id, &p.config, &dir, Some(p.number))?;
        self.observer
            .note(&format!("trial {}: run {} ({described})", p.number, p.id));
        Ok(true)
    }
}

/// `learning_rate=0.002, hidden_fmaps=32`: the searched values of a trial.
fn describe_trial(config: &RunConfig, e: &Experiment) -> String {
    let value = serde_json::to_value(config).unwrap_or_default();
    e.search
        .space
        .keys()
        .map(|k| {
            format!(
                "{k}={}",
                value
                    .get(k)
                    .map_or("?".into(), |v| v.to_string().trim_matches('"').to_owned())
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
