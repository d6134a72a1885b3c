//! pixelx: hyperparameter sweeps of Gated PixelCNN image models.
//!
//! The binary (`src/main.rs`) only parses arguments and calls [`cli::main`]; everything else lives
//! here so that tests and benchmarks exercise exactly the code users run.
//!
//! Data flows one way: [`config`] → [`train`] (using [`data`] and [`model`]) → run folders
//! ([`run_dir`]) → [`sample`], [`metrics`] and [`weights`] for inspection and export.

pub mod cli;
pub mod config;
pub mod data;
pub mod device;
pub mod interop;
pub mod metrics;
pub mod model;
pub mod precision;
pub mod registry;
pub mod report;
pub mod run_dir;
pub mod sample;
pub mod schedule;
pub mod serve;
pub mod train;
pub mod weights;
