//! Run configuration: the parameters of one training run, their defaults and their validation.
//!
//! Names follow the original `train.py` flags in snake_case so that experiment files, the CLI and
//! the registry all speak the same language.

mod run_config;

pub use run_config::{ConfigError, LrSchedule, RunConfig, DATASETS};
