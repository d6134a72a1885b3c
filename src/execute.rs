//! Training one run in this process: the worker side of the journal protocol.
//!
//! A worker takes its run folder's lock (so no two processes ever train one folder), reads the
//! run's `config.toml`, resumes from the newest intact checkpoint, and records everything in the
//! run's journal; it never opens the registry (this module does not import it). `pixelx worker`
//! (started by the scheduler, locally or as a Slurm job) runs just this; `pixelx train` and
//! `pixelx resume` run it too, while the command line ingests the journal into the registry as
//! they go.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::device::{device_name, resolve_device};
use crate::fsio::FileLock;
use crate::journal::{self, CheckpointRecord, EpochRecord, Event, FinalStatus, StepRecord};
use crate::run_dir::RunDir;
use crate::signals;
use crate::train::{Diverged, Next, Observer, Outcome, StepInfo, TrainState, Trainer};

/// Step losses are journalled in batches: one line per this many steps or this interval,
/// whichever comes first (the interval is also how fresh progress displays are).
const FLUSH_STEPS: usize = 500;
const FLUSH_INTERVAL: Duration = Duration::from_secs(2);
/// How long a worker waits for the coordinator's decision after an epoch before it stops,
/// resumably: a coordinator that is gone for good must not hold a GPU idle forever.
pub const DECISION_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Exit code of a worker whose run is held by another process (EX_TEMPFAIL): nothing was done.
pub const BUSY_EXIT: u8 = 75;

/// Another process holds the run's folder.
#[derive(Debug, thiserror::Error)]
#[error("run {run} is being trained by {holder}")]
pub struct Busy {
    pub run: String,
    pub holder: String,
}

/// How to execute a run.
#[derive(Debug, Clone)]
pub struct ExecuteOptions<'a> {
    pub runs_dir: &'a Path,
    pub data_dir: &'a Path,
    /// Device for this run; `None` uses the run's own `device` setting.
    pub device: Option<&'a str>,
    /// Wait after each epoch for the coordinator's decision (the experiment has a pruner).
    pub ask_before_epoch: bool,
    /// The Slurm job running this worker, if any.
    pub job: Option<String>,
}

/// The lock file of a run's folder.
pub fn lock_path(run: &RunDir) -> std::path::PathBuf {
    run.root.join("worker.lock")
}

/// Trains run `run_id` in its folder to its end, until a stop is requested, or until the
/// coordinator prunes it, recording everything in its journal. Returns how the run was left. A
/// problem of the run itself (bad data, divergence) is journalled and returned as a status; an
/// `Err` means the run could not be taken at all ([`Busy`], no such run). `display` sees the
/// training too (a progress bar), after the journal.
pub fn execute_run(opts: &ExecuteOptions, run_id: &str, display: &mut dyn Observer) -> Result<FinalStatus> {
    crate::run_dir::check_run_id(run_id)?;
    let run = RunDir::new(opts.runs_dir, run_id);
    if !run.config_path().is_file() {
        bail!("no run folder {} (or it has no config.toml)", run.root.display());
    }
    let _lock = match FileLock::try_acquire(&lock_path(&run), &crate::fsio::this_process())? {
        Ok(lock) => lock,
        Err(holder) => {
            return Err(Busy {
                run: run_id.to_owned(),
                holder,
            }
            .into())
        }
    };
    // The last writer may have been killed mid-line: a new event appended to that half line
    // would be lost with it.
    journal::cut_torn_tail(&run.root).context("preparing the run's journal")?;
    let (status, detail) = match train(opts, &run, display) {
        Ok((status, detail)) => (status, detail),
        Err(e) => {
            let status = if e.downcast_ref::<Diverged>().is_some() {
                FinalStatus::Diverged
            } else {
                FinalStatus::Failed
            };
            tracing::error!("run {run_id}: {e:#}");
            (status, Some(format!("{e:#}")))
        }
    };
    journal::append(&run.root, Event::Finished { status, detail })?;
    Ok(status)
}

fn train(
    opts: &ExecuteOptions,
    run: &RunDir,
    display: &mut dyn Observer,
) -> Result<(FinalStatus, Option<String>)> {
    let config = crate::run_dir::read_config(run)?;
    let device_choice = opts.device.unwrap_or(&config.device).to_owned();
    let device = resolve_device(&device_choice)?;
    tracing::info!(run = %run.id, device = device_name(device), "starting");
    let mut trainer = crate::panics::catch("loading the run", || {
        Trainer::resume(config.clone(), run.clone(), opts.data_dir, device)
    })?;
    journal::append(
        &run.root,
        Event::Started {
            pid: std::process::id(),
            host: crate::host::hostname(),
            device: device_name(device),
            job: opts.job.clone(),
            checkpoint: trainer
                .resumed_from
                .as_ref()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned()),
            epochs_done: trainer.state.epochs_done,
            global_step: trainer.state.global_step,
            steps_per_epoch: trainer.steps_per_epoch(),
            history: trainer.state.history.clone(),
            precision: Some(trainer.precision()),
        },
    )?;
    let mut observer = JournalObserver::new(&run.root, opts.ask_before_epoch);
    let outcome = crate::panics::catch("training", || {
        trainer.run(
            &mut Tee {
                journal: &mut observer,
                display,
            },
            &signals::STOP,
        )
    });
    observer.flush();
    if let Some(e) = observer.error.take() {
        return Err(e.context("writing the run's journal"));
    }
    Ok(match outcome? {
        Outcome::Completed => (FinalStatus::Completed, None),
        Outcome::Pruned(why) => (FinalStatus::Pruned, Some(why)),
        Outcome::Interrupted if signals::REQUEUE.load(Ordering::SeqCst) => (
            FinalStatus::Interrupted,
            Some("checkpointed for a Slurm requeue (time limit or preemption)".into()),
        ),
        Outcome::Interrupted => (FinalStatus::Interrupted, Some("stopped on request".into())),
    })
}

/// Records a run into its journal as it trains; between epochs, waits for the coordinator's
/// decision when asked to.
pub struct JournalObserver<'a> {
    run: &'a Path,
    pending: Vec<StepRecord>,
    last: Option<StepInfo>,
    last_flush: Instant,
    ask: bool,
    /// The first journalling error: a run whose record could not be written must not look
    /// successful.
    error: Option<anyhow::Error>,
}

impl<'a> JournalObserver<'a> {
    pub fn new(run: &'a Path, ask: bool) -> Self {
        Self {
            run,
            pending: Vec::new(),
            last: None,
            last_flush: Instant::now(),
            ask,
            error: None,
        }
    }

    fn append(&mut self, event: Event) {
        if let Err(e) = journal::append(self.run, event) {
            tracing::error!("{e:#}");
            self.error.get_or_insert(e);
            // Training on would be unrecorded work (the run folder was deleted, the journal
            // replaced): stop at the next step, as on a stop request.
            signals::STOP.store(true, Ordering::SeqCst);
        }
    }

    /// Journals the buffered steps with where the epoch stands.
    pub fn flush(&mut self) {
        let Some(last) = self.last else { return };
        if self.pending.is_empty() {
            return;
        }
        let steps = std::mem::take(&mut self.pending);
        self.append(Event::Steps {
            epoch: last.epoch,
            step_in_epoch: last.step_in_epoch,
            steps_per_epoch: last.steps_per_epoch,
            images_per_sec: last.images_per_sec,
            steps,
        });
        self.last_flush = Instant::now();
    }
}

impl Observer for JournalObserver<'_> {
    fn on_step(&mut self, s: &StepInfo) {
        self.pending.push(StepRecord(s.step, s.loss, s.lr));
        self.last = Some(*s);
        if self.pending.len() >= FLUSH_STEPS || self.last_flush.elapsed() >= FLUSH_INTERVAL {
            self.flush();
        }
    }

    fn before_checkpoint(&mut self) {
        self.flush();
    }

    fn on_epoch(&mut self, record: &EpochRecord, checkpoint: &CheckpointRecord, is_best: bool) {
        self.append(Event::Epoch {
            record: record.clone(),
            checkpoint: checkpoint.clone(),
            best: is_best,
            peak_rss_mb: Some(crate::host::peak_rss_mb()),
            threads: u32::try_from(tch::get_num_threads()).ok(),
        });
    }

    fn on_samples(&mut self, epoch: u32, path: &Path) {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.append(Event::Samples { epoch, file });
    }

    fn on_interrupt_checkpoint(&mut self, checkpoint: &CheckpointRecord, state: &TrainState) {
        self.append(Event::Checkpoint {
            checkpoint: checkpoint.clone(),
            epochs_done: state.epochs_done,
            step_in_epoch: state.step_in_epoch,
        });
    }

    fn next_epoch(&mut self, epochs_done: u32, stop: &AtomicBool) -> Result<Next> {
        if !self.ask {
            return Ok(Next::Continue);
        }
        let asked = Instant::now();
        loop {
            if let Some(d) = journal::read_decision(self.run, epochs_done)? {
                return Ok(if d.prune {
                    Next::Prune(format!("{}: {}", d.rule, d.detail))
                } else {
                    Next::Continue
                });
            }
            if stop.load(Ordering::SeqCst) {
                return Ok(Next::Stop);
            }
            if asked.elapsed() > DECISION_TIMEOUT {
                tracing::warn!(
                    "no decision from the coordinator {} after epoch {epochs_done}; stopping (resumable)",
                    humantime(DECISION_TIMEOUT)
                );
                return Ok(Next::Stop);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The journal first, then a display; only the journal answers between epochs.
struct Tee<'a, 'j> {
    journal: &'a mut JournalObserver<'j>,
    display: &'a mut dyn Observer,
}

impl Observer for Tee<'_, '_> {
    fn on_step(&mut self, step: &StepInfo) {
        self.journal.on_step(step);
        self.display.on_step(step);
    }

    fn before_checkpoint(&mut self) {
        self.journal.before_checkpoint();
        self.display.before_checkpoint();
    }

    fn on_epoch(&mut self, record: &EpochRecord, checkpoint: &CheckpointRecord, is_best: bool) {
        self.journal.on_epoch(record, checkpoint, is_best);
        self.display.on_epoch(record, checkpoint, is_best);
    }

    fn on_samples(&mut self, epoch: u32, path: &Path) {
        self.journal.on_samples(epoch, path);
        self.display.on_samples(epoch, path);
    }

    fn on_interrupt_checkpoint(&mut self, checkpoint: &CheckpointRecord, state: &TrainState) {
        self.journal.on_interrupt_checkpoint(checkpoint, state);
        self.display.on_interrupt_checkpoint(checkpoint, state);
    }

    fn next_epoch(&mut self, epochs_done: u32, stop: &AtomicBool) -> Result<Next> {
        self.journal.next_epoch(epochs_done, stop)
    }
}

fn humantime(d: Duration) -> String {
    format!("{} min", d.as_secs() / 60)
}

#[cfg(test)]
mod tests {
    /// "A worker never opens the registry" holds by imports: the worker's side names no
    /// registry (`pixelx train`/`resume` record from the command line, `cli/recorded.rs`).
    #[test]
    fn the_worker_side_does_not_import_the_registry() {
        let source = include_str!("execute.rs");
        let path = ["crate", "::", "registry"].concat();
        assert!(!source.contains(&path), "execute.rs imports the registry");
    }
}
