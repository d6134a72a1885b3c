//! What the coordinator's steps share: the experiment, the registry, the backend, the observer,
//! and the runs queued and in flight.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::config::{Experiment, RunConfig};
use crate::registry::Registry;
use crate::run_dir::RunDir;
use crate::schedule::backend::Backend;
use crate::schedule::observer::SweepObserver;
use crate::schedule::options::{SweepOptions, SweepSummary};
use crate::schedule::study::Study;

/// A run this coordinator is waiting on.
pub(super) struct Active {
    pub(super) config: RunConfig,
    /// Epochs the study has already answered for.
    pub(super) decided: HashSet<u32>,
}

impl Active {
    pub(super) fn new(config: RunConfig) -> Self {
        Self {
            config,
            decided: HashSet::new(),
        }
    }
}

pub(super) struct Coordinator<'a> {
    pub(super) experiment: &'a Experiment,
    pub(super) opts: &'a SweepOptions,
    pub(super) registry: Registry,
    pub(super) backend: Box<dyn Backend>,
    pub(super) study: Study<'a>,
    pub(super) observer: &'a mut dyn SweepObserver,
    /// Runs to start, in order (grid runs, and unfinished trials of an adaptive search).
    pub(super) queue: VecDeque<String>,
    pub(super) active: HashMap<String, Active>,
    /// Starts per run in this session, for the retry limit.
    pub(super) starts: HashMap<String, u32>,
    pub(super) summary: SweepSummary,
    pub(super) interrupted: bool,
}

impl<'a> Coordinator<'a> {
    pub(super) fn new(
        experiment: &'a Experiment,
        opts: &'a SweepOptions,
        registry: Registry,
        backend: Box<dyn Backend>,
        observer: &'a mut dyn SweepObserver,
    ) -> Self {
        Self {
            experiment,
            opts,
            registry,
            backend,
            study: Study::new(experiment),
            observer,
            queue: VecDeque::new(),
            active: HashMap::new(),
            starts: HashMap::new(),
            summary: SweepSummary::default(),
            interrupted: false,
        }
    }

    pub(super) fn run_dir(&self, id: &str) -> RunDir {
        RunDir::new(&self.opts.runs_dir, id)
    }

    /// Runs in flight at once: the backend's slots, or fewer when the search says so.
    pub(super) fn capacity(&self) -> usize {
        crate::slots::capacity(self.experiment, self.backend.capacity())
    }
}
