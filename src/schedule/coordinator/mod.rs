//! The coordinator's loop, and how it starts and stops. Its steps live beside it, one file
//! each: [`prepare`] (before the loop), then per turn [`ingest`], [`reap`] and [`fill`]; the
//! state they share is [`state::Coordinator`].

mod fill;
mod ingest;
mod prepare;
mod reap;
mod state;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Result};

use super::backend::Backend;
use super::observer::SweepObserver;
use super::options::{SweepOptions, SweepSummary};
use super::{local, slurm};
use crate::config::{BackendKind, Experiment};
use crate::device::cuda_device_count;
use crate::fsio::FileLock;
use crate::registry::{Registry, RunStatus};
use crate::signals;
use crate::slots::plan_slots;
use state::Coordinator;

/// The lock file that makes one coordinator per experiment (per runs folder).
pub fn experiment_lock_path(runs_dir: &Path, experiment: &str) -> PathBuf {
    let hash = crate::fsio::sha256_hex(experiment.as_bytes());
    runs_dir
        .join(".locks")
        .join(format!("experiment-{}.lock", &hash[..16]))
}

/// The backend an experiment's `[scheduler]` asks for.
/// `finished` runs of it are done already (the local backend packs CPU slots for the rest).
pub fn make_backend(
    experiment: &Experiment,
    opts: &SweepOptions,
    finished: usize,
) -> Result<Box<dyn Backend>> {
    Ok(match experiment.scheduler.backend {
        BackendKind::Local => {
            let slots = plan_slots(
                &experiment.scheduler,
                cuda_device_count(),
                crate::host::num_cores(),
                &crate::train::memory::workload(experiment, finished),
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

/// Runs `experiment`: trains every unfinished run (or, for an adaptive search, proposes and
/// trains trials up to its budget) over the backend's workers, telling `observer` as it goes.
pub fn run_experiment(
    experiment: &Experiment,
    opts: &SweepOptions,
    observer: &mut dyn SweepObserver,
) -> Result<SweepSummary> {
    let lock_path = experiment_lock_path(&opts.runs_dir, &experiment.info.name);
    let _lock = match FileLock::try_acquire(&lock_path, &crate::fsio::this_process())? {
        Ok(lock) => lock,
        Err(holder) => bail!(
            "experiment `{}` is being run by {holder} (lock {}); wait for it to finish or stop it",
            experiment.info.name,
            lock_path.display()
        ),
    };
    let registry = Registry::open(&opts.registry)?;
    let finished = if opts.force {
        0
    } else {
        registry.finished_count(&experiment.info.name)?
    };
    let backend = make_backend(experiment, opts, finished)?;
    // The loop reports the first interrupt itself (it forwards it to the workers).
    signals::install(None, || {});
    let mut c = Coordinator::new(experiment, opts, registry, backend, observer);
    if let Err(e) = c.prepare().and_then(|()| c.run()) {
        c.settle_after_error(&e);
        return Err(e);
    }
    Ok(c.summary)
}

/// How long a coordinator that stopped on an error waits for its local workers to checkpoint.
const SETTLE_WAIT: Duration = Duration::from_secs(30);

impl Coordinator<'_> {
    fn run(&mut self) -> Result<()> {
        loop {
            if signals::stop_requested() && !self.interrupted {
                self.interrupted = true;
                self.summary.stopped = true;
                self.observer
                    .note("interrupt: asking workers to checkpoint and stop (again to stop at once)");
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
        self.observer.done(self.interrupted);
        Ok(())
    }

    /// After an error ends the sweep: asks the workers that stop with their coordinator to
    /// checkpoint and stop, waits a while for them, and settles the runs still recorded as
    /// running as interrupted, so none is left `running` for a process that is gone; the next
    /// `pixelx run` continues them. Workers that outlive it (Slurm jobs) keep running: the next
    /// coordinator re-attaches to them, as when a coordinator is killed.
    fn settle_after_error(&mut self, error: &anyhow::Error) {
        if self.active.is_empty() || !self.backend.workers_end_with_coordinator() {
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
}
