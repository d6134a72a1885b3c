//! Configuration: the parameters of one training run ([`RunConfig`]), and experiment files
//! that describe many runs and how to sweep them ([`Experiment`]).
//!
//! Names follow the original `train.py` flags in snake_case so that experiment files, the CLI and
//! the registry all speak the same language.
//!
//! The files, lowest first (each imports only those before it): `keys` (the names a file may
//! use), `sources` (where a value came from), `sweep` (the sweep's settings), `run_config`,
//! `schema` (the file's tables), `identity` (run ids), `overrides` (`--set` and layering),
//! `expand` (a grid into runs), `checks` (what types cannot express), `experiment` (loading).

mod checks;
mod expand;
mod experiment;
mod identity;
mod keys;
mod overrides;
mod run_config;
mod schema;
mod sources;
mod sweep;

pub use expand::overlay;
pub use experiment::{Experiment, ExperimentError};
pub use identity::{run_id, Equivalent, RunSpec};
pub use keys::RUN_KEYS;
pub use overrides::parse_override;
pub use run_config::{ConfigError, LrSchedule, RunConfig, MAX_BATCH_SIZE, MAX_EPOCH_SAMPLES};
pub use schema::{ExperimentFile, ExperimentInfo, RandomSearch, Table, DEFAULT_MAX_RUNS};
pub use sources::{env_run_values, humanize, misspelt_env_vars, suggest, Source, Sources};
pub use sweep::{
    BackendKind, Devices, PrunerKind, PrunerSettings, RunsPerDevice, SchedulerSettings, SearchMethod,
    SearchSettings, SlurmSettings, PRUNER_METRICS,
};
