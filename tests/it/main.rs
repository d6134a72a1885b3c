//! pixelx's integration tests, in one binary (as cargo's `tests/testsuite`), so that libtorch is
//! linked once. Run one file's tests with `cargo test --test it <file>::`, one test with
//! `cargo test --test it <name>`.
//!
//! Where a new test goes: each module below says what belongs in it on its first line; a helper
//! more than one file needs goes into `support`. Tests run the real `pixelx` binary on real MNIST
//! (`$PIXELX_DATA_DIR`) and real SQLite files, with tiny models.

mod support;

mod cli;
mod dashboard;
mod data;
mod errors;
mod estimates;
mod experiment_files;
mod journal_integrity;
mod mlflow_sync;
mod model_causality;
mod reference_parity;
mod registry;
mod report_html;
mod run_lifecycle;
mod sampling;
mod scale;
mod search;
mod search_replay;
mod shell;
mod slurm;
mod structure;
mod study_integrity;
mod sweep;
mod training;
