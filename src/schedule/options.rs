//! How `pixelx run` asked the coordinator to behave, and how the sweep's runs ended.

use std::path::PathBuf;

/// How `pixelx run` was asked to behave.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    pub runs_dir: PathBuf,
    pub data_dir: PathBuf,
    pub registry: PathBuf,
    pub force: bool,
    /// `--threads`: at most this many torch threads per worker.
    pub threads: Option<usize>,
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
