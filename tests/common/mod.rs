//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use pixelx::config::{LrSchedule, RunConfig};

/// The datasets `just setup` fetched (or `$PIXELX_DATA_DIR`).
pub fn data_dir() -> PathBuf {
    std::env::var_os("PIXELX_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data"))
}

/// The project's Python, with torch, from `scripts/setup-venv.sh`.
pub fn venv_python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python")
}

/// A model and data small enough to train in seconds on two cores, on real MNIST.
pub fn tiny_config() -> RunConfig {
    RunConfig {
        epochs: 2,
        batch_size: 32,
        causal_ksize: 5,
        hidden_ksize: 3,
        hidden_fmaps: 8,
        out_hidden_fmaps: 8,
        hidden_layers: 1,
        learning_rate: 5e-3,
        lr_schedule: LrSchedule::Cosine,
        epoch_samples: 2,
        train_subset: 1024,
        test_subset: 128,
        device: "cpu".into(),
        seed: 7,
        ..RunConfig::default()
    }
}

/// The built `pixelx` binary.
pub fn pixelx() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pixelx"));
    cmd.env("PIXELX_DATA_DIR", data_dir()).env("PIXELX_THREADS", "1");
    cmd
}
