//! Configuration: the parameters of one training run ([`RunConfig`]), and experiment files
//! that describe many runs and how to sweep them ([`Experiment`]).
//!
//! Names follow the original `train.py` flags in snake_case so that experiment files, the CLI and
//! the registry all speak the same language.

mod expand;
mod experiment;
mod run_config;
mod sources;
mod sweep;

pub use expand::{overlay, Table};
pub use experiment::{
    parse_override, run_id, Equivalent, Experiment, ExperimentError, ExperimentFile, ExperimentInfo,
    RandomSearch, RunSpec, DEFAULT_MAX_RUNS, RUN_KEYS,
};
pub use run_config::{ConfigError, LrSchedule, RunConfig, MAX_BATCH_SIZE, MAX_EPOCH_SAMPLES};
pub use sources::{env_run_values, humanize, misspelt_env_vars, suggest, Source, Sources};
pub use sweep::{
    BackendKind, Devices, PrunerKind, PrunerSettings, SchedulerSettings, SearchMethod, SearchSettings,
    SlurmSettings, PRUNER_METRICS,
};
