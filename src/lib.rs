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
//!
//! The modules, from the command line down:
//!
//! - [`cli`]: argument definitions, dispatch, and the one place exit codes are decided.
//! - [`serve`]: `pixelx serve`, a read-only dashboard over the registry, live while sweeps run.
//! - [`sync`]: `pixelx sync mlflow`, pushing runs to an MLflow server, sending only what is new.
//! - [`report`]: comparing runs: tables, the best runs, a self-contained HTML report.
//! - [`schedule`]: the coordinator of `pixelx run`: local and Slurm backends, pruning
//!   decisions, ingestion, events for a `SweepObserver`; the registry's one writer while a sweep
//!   runs.
//! - [`estimate`]: a sweep's cost before and while it runs, from calibration or history.
//! - [`execute`]: one run in this process, the worker side of the journal protocol.
//! - [`train`]: the training loop, checkpoints and per-epoch samples.
//! - [`sample`]: images from a trained model, as a PNG grid.
//! - [`search`]: grid, random and TPE search and the pruners, free of training code.
//! - [`census`]: what a study's space holds, and which of its points are invalid.
//! - [`slots`]: the slots a sweep runs on, the one capacity rule, the list scheduler.
//! - [`registry`]: the SQLite registry of experiments, runs, metrics and artefacts.
//! - [`journal`]: a run's append-only event file and the coordinator's decisions file.
//! - [`config`]: run configurations and experiment files: schema, `--set`, run ids, checks.
//! - [`model`], [`metrics`], [`data`]: the Gated PixelCNN, its likelihood metrics, the datasets.
//! - [`weights`], [`interop`]: safetensors weight files, ours and the reference layout's.
//! - [`run_dir`]: a run's folder and the one run-id rule.
//! - [`device`], [`precision`], [`host`]: devices as users name them, fp32/bf16, facts about
//!   this machine.
//! - [`fsio`], [`signals`], [`panics`], [`stats`], [`format`]: safe file writes, stop signals,
//!   libtorch panics as errors, the one median, numbers, sizes and durations for people.

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
pub mod stats;
pub mod sync;
pub mod train;
pub mod weights;
