//! What a sweep's coordinator tells whoever watches it, as [`crate::train::Observer`] does for
//! one run's training: runs starting, moving, progressing, finishing, and the lines worth
//! reading. The coordinator draws nothing itself; the command line's progress display and its
//! plain-line log are observers (`cli::sweep_view`).

use crate::registry::{Progress, RunStatus};

/// Work still to do, for ETAs when there is no estimate: images of epochs not trained yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    pub epochs: u64,
    pub images: u64,
}

/// The sweep as the coordinator prepared it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepPlan {
    /// Epochs over the whole sweep (its study's trials still to propose at the base size).
    pub total_epochs: u64,
    /// Of those, the epochs trained before this coordinator started.
    pub done_epochs: u64,
    /// The work left.
    pub remaining: Work,
    /// Runs in flight at once.
    pub slots: usize,
}

/// Hooks for whoever watches a sweep. Every method has a default that ignores the event.
pub trait SweepObserver {
    /// A line worth reading: a re-attached job, an interrupt, a retry, a proposed trial, a run
    /// held by another process.
    fn note(&mut self, _text: &str) {}
    /// The sweep is prepared (before the runs it re-attached to are reported started).
    fn planned(&mut self, _plan: &SweepPlan) {}
    /// A run's worker started (or was re-attached to) at `place`.
    fn started(&mut self, _run_id: &str, _place: &str, _epochs: u32, _images_per_epoch: i64) {}
    /// Where a running run's worker is now ("queued in Slurm", "on node7").
    fn place(&mut self, _run_id: &str, _place: &str) {}
    /// The latest progress a running run journalled.
    fn progress(&mut self, _run_id: &str, _progress: &Progress) {}
    /// A run finished an epoch.
    fn epoch(&mut self, _run_id: &str, _epoch: u32, _bpd8: Option<f64>) {}
    /// A run ended (a retried failure too); `detail` says why, for any end but `completed`.
    fn finished(&mut self, _run_id: &str, _status: RunStatus, _detail: Option<&str>) {}
    /// A proposed trial will not train (its configuration is invalid): `note` says why, and its
    /// planned work leaves the sweep.
    fn untrained(&mut self, _note: &str, _epochs: u32, _images_per_epoch: i64) {}
    /// The sweep ended: every run settled, or stopped on request.
    fn done(&mut self, _interrupted: bool) {}
}

/// Watches nothing (`--quiet`, benchmarks).
pub struct NoSweepObserver;
impl SweepObserver for NoSweepObserver {}
