//! The coordinator of `pixelx run`: it spreads an experiment's runs over a backend's workers and
//! is the registry's one writer while it runs.
//!
//! Each turn of its loop is a named step, each in its own file of `coordinator/`: **ingest**
//! what workers journalled (answering pruning questions as epochs finish), **reap** workers that
//! ended (settling their runs, retrying failures), **fill** free slots with the next runs (the
//! grid's, or the study's proposals); before the first turn, **prepare** registers the runs,
//! re-attaches to live workers, recovers what an earlier coordinator left, and orders the rest.
//! What happens is told to a [`SweepObserver`] (the command line draws it). Workers write only
//! their run folder, so killing the coordinator loses nothing: running the experiment again
//! ingests what they wrote, re-attaches to those still alive (Slurm jobs) and continues the rest.
//! An experiment is run by one coordinator at a time. Slots and their count come from
//! [`crate::slots`].

pub mod backend;
mod coordinator;
pub mod local;
pub mod observer;
mod options;
pub mod slurm;
pub mod study;

pub use coordinator::{experiment_lock_path, make_backend, run_experiment};
pub use observer::{NoSweepObserver, SweepObserver, SweepPlan, Work};
pub use options::{SweepOptions, SweepSummary};
