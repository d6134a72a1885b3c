//! The coordinator of `pixelx run`: it spreads an experiment's runs over a backend's workers and
//! is the registry's one writer while it runs.
//!
//! Each turn of its loop is a named step: **ingest** what workers journalled (answering pruning
//! questions as epochs finish), **reap** workers that ended (settling their runs, retrying
//! failures), **fill** free slots with the next runs (the grid's, or the study's proposals), and
//! show progress. Workers write only their run folder, so killing the coordinator loses nothing:
//! running the experiment again ingests what they wrote, re-attaches to those still alive (Slurm
//! jobs) and continues the rest. An experiment is run by one coordinator at a time.

pub mod backend;
pub mod local;
pub mod progress;
pub mod slurm;
pub mod study;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::config::{BackendKind, Experiment, RunConfig};
use crate::device::cuda_device_count;
use crate::fsio::FileLock;
use crate::journal;
use crate::registry::{Registry, RunStatus};
use crate::run_dir::RunDir;
use crate::signals;
use backend::{Backend, Launch};
use progress::{SweepProgress, Work};
use study::Study;

pub use local::{plan_slots, Slot};

/// How `pixelx run` was asked to behave.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    pub runs_dir: PathBuf,
    pub data_dir: PathBuf,
    pub registry: PathBuf,
    pub force: bool,
    pub quiet: bool,
    /// `--threads`: at most this many torch threads per worker.
    pub threads: Option<usize>,
    /// What the sweep was estimated to cost: the display's ETAs before runs report speeds.
    pub estimate: Option<crate::estimate::SweepEstimate>,
}

/// Counts of how a sweep's runs ended.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepSummary {
    pub completed: usize,
    pub skipped: usize,
    pub failed: usize,
    pub diverged: usize,
    pub interrupted: usize,
    pub pruned: usize,
    /// Trials of an adaptive search whose configuration is invalid: recorded as failed, never
    /// trained (apart from `failed`, which counts runs that broke).
    pub invalid: usize,
    /// The sweep stopped on a signal before finishing.
    pub stopped: bool,
}

/// The lock file that makes one coordinator per experiment (per runs folder).
pub fn experiment_lock_path(runs_dir: &Path, experiment: &str) -> PathBuf {
    let hash = crate::fsio::sha256_hex(experiment.as_bytes());
    runs_dir
        .join(".locks")
        .join(format!("experiment-{}.lock", &hash[..16]))
}

/// The backend an experiment's `[scheduler]` asks for.
pub fn make_backend(experiment: &Experiment, opts: &SweepOptions) -> Result<Box<dyn Backend>> {
    Ok(match experiment.scheduler.backend {
        BackendKind::Local => {
            let slots = plan_slots(
                &experiment.scheduler,
                cuda_device_count(),
                crate::host::num_cores(),
            )?;
            Box::new(local::LocalBackend::new(
                slots,
                local::WorkerPaths {
                    runs_dir: opts.runs_dir.clone(),
                    data_dir: opts.data_dir.clone(),
                },
            ))
        }
        BackendKind::Slurm => Box::new(slurm::SlurmBackend::new(
            experiment.scheduler.slurm.clone(),
            slurm::WorkerPaths::resolve(&opts.runs_dir, &opts.data_dir)?,
        )?),
    })
}

/// A run this coordinator is waiting on.
struct Active {
    config: RunConfig,
    /// Epochs the study has already answered for.
    decided: HashSet<u32>,
}

struct Coordinator<'a> {
    experiment: &'a Experiment,
    opts: &'a SweepOptions,
    registry: Registry,
    backend: Box<dyn Backend>,
    study: Study<'a>,
    progress: SweepProgress,
    /// Runs to start, in order (grid runs, and unfinished trials of an adaptive search).
    queue: VecDeque<String>,
    active: HashMap<String, Active>,
    /// Starts per run in this session, for the retry limit.
    starts: HashMap<String, u32>,
    summary: SweepSummary,
    interrupted: bool,
}

/// Runs `experiment`: trains every unfinished run (or, for an adaptive search, proposes and
/// trains trials up to its budget) over the backend's workers.
pub fn run_experiment(experiment: &Experiment, opts: &SweepOptions) -> Result<SweepSummary> {
    let lock_path = experiment_lock_path(&opts.runs_dir, &experiment.info.name);
    let _lock = match FileLock::try_acquire(&lock_path, &crate::fsio::this_process())? {
        Ok(lock) => lock,
        Err(holder) => bail!(
            "experiment `{}` is being run by {holder} (lock {}); wait for it to finish or stop it",
            experiment.info.name,
            lock_path.display()
        ),
    };
    let backend = make_backend(experiment, opts)?;
    let registry = Registry::open(&opts.registry)?;
    // The loop reports the first interrupt itself (it forwards it to the workers).
    signals::install(None, || {});
    let mut c = Coordinator::new(experiment, opts, registry, backend)?;
    if let Err(e) = c.prepare().and_then(|()| c.run()) {
        c.settle_after_error(&e);
        return Err(e);
    }
    Ok(c.summary)
}

/// How long a coordinator that stopped on an error waits for its local workers to checkpoint.
const SETTLE_WAIT: Duration = Duration::from_secs(30);

impl<'a> Coordinator<'a> {
    fn new(
        experiment: &'a Experiment,
        opts: &'a SweepOptions,
        registry: Registry,
        backend: Box<dyn Backend>,
    ) -> Result<Self> {
        let slots = backend.capacity();
        Ok(Self {
            experiment,
            opts,
            registry,
            backend,
            study: Study::new(experiment),
            progress: SweepProgress::new(0, 0, Work::default(), slots, opts.quiet),
            queue: VecDeque::new(),
            active: HashMap::new(),
            starts: HashMap::new(),
            summary: SweepSummary::default(),
            interrupted: false,
        })
    }

    /// After an error ends the sweep: asks the local workers to checkpoint and stop, waits a
    /// while for them, and settles the runs still recorded as running as interrupted, so none
    /// is left `running` for a process that is gone; the next `pixelx run` continues them.
    /// Slurm jobs keep running (the next coordinator re-attaches to them), as when a
    /// coordinator is killed.
    fn settle_after_error(&mut self, error: &anyhow::Error) {
        if self.active.is_empty() || self.backend.name() != "local" {
            return;
        }
        self.interrupted = true;
        self.backend.interrupt_all();
        let start = std::time::Instant::now();
        while !self.active.is_empty() && start.elapsed() < SETTLE_WAIT {
            if let Err(e) = self.reap() {
                tracing::warn!("while stopping the workers: {e:#}");
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let why = format!("the coordinator stopped on an error: {error:#}");
        for id in self.active.keys() {
            let _ = self.registry.ingest(id, &self.run_dir(id).root);
            let running = self
                .registry
                .run(id)
                .ok()
                .flatten()
                .is_some_and(|r| r.status == RunStatus::Running && r.job.is_none());
            if running {
                if let Err(e) = self.registry.set_status(id, RunStatus::Interrupted, Some(&why)) {
                    tracing::warn!("run {id} is still recorded as running: {e:#}");
                }
            }
        }
    }

    fn run_dir(&self, id: &str) -> RunDir {
        RunDir::new(&self.opts.runs_dir, id)
    }

    /// Registers the experiment and its runs, catches up with what workers of an earlier
    /// coordinator journalled, re-attaches to live ones, and queues what is unfinished.
    fn prepare(&mut self) -> Result<()> {
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
        let rows = self.registry.trial_rows(&e.info.name, &e.pruner.metric)?;
        // Journals first: a worker of an earlier coordinator may have finished since.
        for row in &rows {
            self.ingest_run(&row.id)?;
        }
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
            self.progress.line(&format!(
                "{id}: re-attached to {} ({})",
                row.holder(),
                self.backend.name()
            ));
            self.active.insert(
                id,
                Active {
                    config: row.config,
                    decided: HashSet::new(),
                },
            );
        }
        for id in self.registry.recover_stale(Some(&e.info.name))? {
            tracing::warn!("run {id} was left running by a process that is gone; it will continue");
        }
        // Jobs an earlier coordinator started that are gone now: their journals say how they
        // ended, or else they are interrupted and continue.
        for (id, _) in &jobs {
            if !self.active.contains_key(id) {
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
        }

        let rows = self.registry.trial_rows(&e.info.name, &e.pruner.metric)?;
        let mut total_epochs = 0u64;
        let mut done_epochs = 0u64;
        let mut work = Work::default();
        let mut ordered: Vec<&crate::registry::TrialRow> = rows.iter().collect();
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
        for row in ordered {
            let Some(run) = self.registry.run(&row.id)? else {
                continue;
            };
            // An invalid trial was never trained and never will be: nothing to queue or force.
            if study::is_invalid(&run.config) {
                self.summary.invalid += 1;
                continue;
            }
            let epochs = run.config.epochs as u64;
            total_epochs += epochs;
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
            if self.active.contains_key(&row.id) {
                done_epochs += trained;
                work.epochs += epochs.saturating_sub(trained);
                work.images += epochs.saturating_sub(trained) * run.config.images_per_epoch() as u64;
            } else if status.is_unfinished() {
                self.queue.push_back(row.id.clone());
                done_epochs += trained;
                work.epochs += epochs.saturating_sub(trained);
                work.images += epochs.saturating_sub(trained) * run.config.images_per_epoch() as u64;
            } else {
                done_epochs += epochs;
                self.summary.skipped += 1;
            }
        }
        if e.search.method.is_adaptive() {
            self.study.warn_if_changed(&rows);
            // Proposals to come: the budget left, at the base config's size.
            let mut left = e
                .search
                .trials
                .unwrap_or(0)
                .saturating_sub(rows.iter().filter(|r| r.trial.is_some()).count());
            // A small space ends the study once each valid configuration is tried.
            if let Some(valid) = study::census(e, false).and_then(|c| c.valid_ids) {
                left = left.min(
                    valid
                        .iter()
                        .filter(|id| rows.iter().all(|r| &r.id != *id))
                        .count(),
                );
            }
            total_epochs += left as u64 * e.base.epochs as u64;
            work.epochs += left as u64 * e.base.epochs as u64;
            work.images += left as u64 * e.base.epochs as u64 * e.base.images_per_epoch() as u64;
        }
        self.progress = SweepProgress::new(total_epochs, done_epochs, work, self.capacity(), self.opts.quiet);
        if let Some(estimate) = &self.opts.estimate {
            self.progress.set_estimate(estimate);
        }
        let ids: Vec<String> = self.active.keys().cloned().collect();
        for id in ids {
            let place = self
                .backend
                .whereabouts(&id)
                .unwrap_or_else(|| self.backend.name().into());
            let config = self.active[&id].config.clone();
            self.progress
                .started(&id, &place, config.epochs, config.images_per_epoch());
        }
        Ok(())
    }

    /// Runs in flight at once: the backend's slots, or fewer when the search says so.
    fn capacity(&self) -> usize {
        let slots = self.backend.capacity();
        match self.experiment.search.parallel {
            Some(p) if self.experiment.search.method.is_adaptive() => p.min(slots).max(1),
            _ => slots,
        }
    }

    fn run(&mut self) -> Result<()> {
        loop {
            if signals::stop_requested() && !self.interrupted {
                self.interrupted = true;
                self.summary.stopped = true;
                self.progress
                    .line("interrupt: asking workers to checkpoint and stop (again to stop at once)");
                self.backend.interrupt_all();
            }
            self.ingest()?;
            self.reap()?;
            if !self.interrupted {
                self.fill()?;
            }
            if self.active.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.summary.interrupted += self.queue.len();
        self.progress.done(self.interrupted);
        Ok(())
    }

    /// Ingests one run's journal. A journal that cannot be read (replaced by a folder, no
    /// permission) fails its own run, with the cause, rather than stopping the sweep: the other
    /// runs go on and later runs of the file still start. A run already finished keeps its
    /// status, so that nothing recorded is trained again.
    fn ingest_run(&mut self, id: &str) -> Result<crate::registry::Ingested> {
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
    fn ingest(&mut self) -> Result<()> {
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
                self.progress.progress(&id, p);
            }
            if let Some(place) = self.backend.whereabouts(&id) {
                self.progress.place(&id, &place);
            }
            for epoch in news.epochs {
                let bpd8 = self
                    .registry
                    .metric_history(&id)?
                    .iter()
                    .find(|m| m.name == "test_bpd8" && m.epoch == Some(epoch as i64))
                    .map(|m| m.value);
                self.progress.epoch(&id, epoch, bpd8);
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

    /// Settles the runs whose workers ended.
    fn reap(&mut self) -> Result<()> {
        for ended in self.backend.reap()? {
            let id = ended.run_id.clone();
            let dir = self.run_dir(&id);
            self.ingest_run(&id)?;
            if self.active.remove(&id).is_none() {
                continue;
            }
            let row = self
                .registry
                .run(&id)?
                .with_context(|| format!("run {id} vanished from the registry"))?;
            let mut status = row.status;
            let mut detail = row.error.clone();
            if status == RunStatus::Running {
                // The worker ended without journalling how: it died, or it never took the run.
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
                status = if resumable {
                    RunStatus::Interrupted
                } else {
                    RunStatus::Failed
                };
                self.registry.set_status(&id, status, Some(&why))?;
                detail = Some(why);
            }
            let starts = self.starts.get(&id).copied().unwrap_or(0);
            let retry = status == RunStatus::Failed
                && starts <= self.experiment.scheduler.retries
                && !ended.busy
                && !self.interrupted;
            if retry {
                self.progress.line(&format!(
                    "{id} failed; retrying ({starts}/{}): {}",
                    self.experiment.scheduler.retries,
                    detail.as_deref().unwrap_or("")
                ));
                self.queue.push_front(id.clone());
            } else {
                match status {
                    RunStatus::Completed => self.summary.completed += 1,
                    RunStatus::Diverged => self.summary.diverged += 1,
                    RunStatus::Pruned => self.summary.pruned += 1,
                    RunStatus::Failed => self.summary.failed += 1,
                    RunStatus::Interrupted | RunStatus::Running | RunStatus::Queued => {
                        self.summary.interrupted += 1
                    }
                }
            }
            self.progress.finished(
                &id,
                status,
                detail.as_deref().filter(|_| status != RunStatus::Completed),
            );
        }
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
        loop {
            let Some(p) = self.study.suggest(&self.registry)? else {
                return Ok(None);
            };
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
                self.progress.untrained(
                    &format!(
                        "trial {}: run {} ({described}) not trained: {error}; recorded as a failed trial",
                        p.number, p.id
                    ),
                    p.config.epochs,
                    p.config.images_per_epoch(),
                );
                continue;
            }
            self.registry
                .add_run(experiment_id, &p.id, &p.config, &dir, Some(p.number))?;
            self.progress
                .line(&format!("trial {}: run {} ({described})", p.number, p.id));
            return Ok(Some((p.id, p.config)));
        }
    }

    /// Starts runs on free slots.
    fn fill(&mut self) -> Result<()> {
        while self.active.len() < self.capacity() {
            let Some((id, config)) = self.next_run()? else {
                break;
            };
            if !self.registry.claim_run(&id, "", None)? {
                let holder = self.registry.run(&id)?.map(|r| r.holder()).unwrap_or_default();
                self.progress.line(&format!("{id} is held by {holder}; skipped"));
                continue;
            }
            *self.starts.entry(id.clone()).or_default() += 1;
            if let Err(e) = RunDir::create(&self.opts.runs_dir, &id, &config) {
                // Claimed but not started: back to the queue, not left `running`.
                self.registry
                    .set_status(&id, RunStatus::Queued, Some(&format!("could not start: {e:#}")))?;
                return Err(e.context(format!("preparing the folder of run {id}")));
            }
            let launch = Launch {
                run_id: id.clone(),
                device: config.device.clone(),
                ask_before_epoch: self.experiment.pruner.is_active(),
            };
            let started = match self.backend.start(&launch) {
                Ok(s) => s,
                Err(e) => {
                    self.registry.set_status(
                        &id,
                        RunStatus::Queued,
                        Some(&format!("could not start: {e:#}")),
                    )?;
                    return Err(e.context(format!(
                        "starting run {id} on the {} backend",
                        self.backend.name()
                    )));
                }
            };
            self.registry
                .set_worker(&id, started.pid, started.job.as_deref(), &started.device)?;
            self.progress
                .started(&id, &started.device, config.epochs, config.images_per_epoch());
            self.active.insert(
                id,
                Active {
                    config,
                    decided: HashSet::new(),
                },
            );
        }
        Ok(())
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
