//! pixelx: hyperparameter sweeps of Gated PixelCNN image models.
//!
//! The binary (`src/main.rs`) only parses arguments and calls [`cli::main`]; everything else lives
//! here so that tests and benchmarks exercise exactly the code users run.
//!
//! Data flows one way (docs/architecture.md has the whole map): [`config`] expands an experiment
//! file into runs; the [`schedule`] coordinator starts workers through a backend on the
//! [`slots`] the scheduler gives, and tells a `SweepObserver` what happens (the [`cli`] draws
//! it); each worker ([`execute`]) trains one run with [`train`] (on [`data`] and [`model`]) and
//! writes its [`journal`] in its run folder ([`run_dir`]); the coordinator ingests journals into
//! the [`registry`], which [`report`] reads and [`serve`] shows. [`search`] holds the pure search
//! and pruning methods, [`census`] what a study's space holds; [`estimate`] says what a sweep
//! costs before it runs; [`format`] writes numbers, sizes and durations for people.

pub mod census;
pub mod cli;
pub mod config;
pub mod data;
pub mod device;
pub mod estimate;
pub mod execute;
pub mod format;
pub mod fsio;
pub mod host;
pub mod interop;
pub mod journal;
pub mod metrics;
pub mod model;
pub mod panics;
pub mod precision;
pub mod registry;
pub mod report;
pub mod run_dir;
pub mod sample;
pub mod schedule;
pub mod search;
pub mod serve;
pub mod signals;
pub mod slots;
pub mod sync;
pub mod train;
pub mod weights;
