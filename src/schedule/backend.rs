//! Where workers run: the interface the coordinator drives, one implementation per backend
//! (local processes, Slurm jobs).

use anyhow::Result;

/// What a backend needs to start a run's worker.
#[derive(Debug, Clone)]
pub struct Launch {
    pub run_id: String,
    /// The run's own device setting (`auto`, `cpu`, `cuda:N`); a backend may assign another.
    pub device: String,
    /// The worker waits for a pruner's decision after each epoch.
    pub ask_before_epoch: bool,
}

/// A worker that was started.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    /// Its process, when it runs on this machine.
    pub pid: Option<u32>,
    /// Its Slurm job.
    pub job: Option<String>,
    /// The device it was given (or what Slurm will give it).
    pub device: String,
}

/// A worker that ended, and how, as the backend saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    pub run_id: String,
    /// "exit code 1", "killed by signal 9", "Slurm: FAILED (JobLaunchFailure)".
    pub cause: String,
    /// It found the run's folder held by another process and did nothing.
    pub busy: bool,
    /// It was cancelled (by the user or an administrator): the run can be resumed.
    pub cancelled: bool,
}

pub trait Backend {
    /// "local" or "slurm", for messages.
    fn name(&self) -> &'static str;
    /// Workers that can be in flight at once.
    fn capacity(&self) -> usize;
    /// Starts a worker for a run whose folder (with its `config.toml`) is ready.
    fn start(&mut self, launch: &Launch) -> Result<Started>;
    /// Workers that ended since the last call.
    fn reap(&mut self) -> Result<Vec<Ended>>;
    /// Where a run's worker is, for the progress display ("cuda:0", "queued in Slurm").
    fn whereabouts(&self, run_id: &str) -> Option<String>;
    /// Asks every worker to checkpoint and stop (the user's first Ctrl-C).
    fn interrupt_all(&mut self);
    /// Whether its workers end with the coordinator (local processes get SIGTERM when it
    /// dies), so that a coordinator stopping on an error stops them and settles their runs;
    /// workers that outlive it (Slurm jobs) are re-attached to by the next coordinator instead.
    fn workers_end_with_coordinator(&self) -> bool {
        false
    }
    /// Takes over the workers an earlier coordinator started and that are still alive, given
    /// (run id, Slurm job); returns the runs taken over.
    fn reattach(&mut self, _runs: &[(String, String)]) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}
