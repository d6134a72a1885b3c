//! Run configuration: the parameters of one training run, their defaults and their validation.
//!
//! Names follow the original `train.py` flags in snake_case so that experiment files, the CLI and
//! the registry all speak the same language.

mod experiment;
mod run_config;

pub use experiment::{
    parse_override, run_id, Devices, Distribution, Experiment, ExperimentError, ExperimentFile,
    ExperimentInfo, RandomSearch, RunSpec, SchedulerSettings, RUN_KEYS,
};
pub use run_config::{ConfigError, LrSchedule, RunConfig, DATASETS};
