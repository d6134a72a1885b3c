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

/// The tiny model's architecture flags for `pixelx train`.
pub const TINY_MODEL: [&str; 10] = [
    "--hidden-fmaps",
    "8",
    "--out-hidden-fmaps",
    "8",
    "--hidden-layers",
    "1",
    "--causal-ksize",
    "5",
    "--hidden-ksize",
    "3",
];

/// Runs pixelx with `args` over the runs folder `runs`: (success, stdout, stderr).
pub fn run_in(runs: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = pixelx().arg("--runs-dir").arg(runs).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// The `[defaults]` lines of a model small enough to train in seconds (experiment files).
pub const TINY_MODEL_TOML: &str = "batch_size = 32
hidden_fmaps = 8
out_hidden_fmaps = 8
hidden_layers = 1
causal_ksize = 5
";

/// An experiment file of tiny models (`grid` holds the TOML lines of its grid table).
pub fn tiny_experiment(name: &str, epochs: u32, train_subset: u32, grid: &str, scheduler: &str) -> String {
    format!(
        r#"
[experiment]
name = "{name}"
dataset = "mnist"

[defaults]
epochs = {epochs}
{TINY_MODEL_TOML}hidden_ksize = 3
epoch_samples = 2
train_subset = {train_subset}
test_subset = 128
lr_schedule = "cosine"
learning_rate = 5e-3

[grid]
{grid}

[scheduler]
{scheduler}
"#
    )
}

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: i32) {
    extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    // SAFETY: kill(2) on a process the test started; no memory is shared.
    unsafe {
        kill(pid as i32, sig);
    }
}

/// Waits up to `limit` for `cond`, polling every 100 ms; false on time-out.
pub fn wait_for(limit: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

/// Every run's status and deterministic results (epoch metrics and step losses, as exact bits):
/// what two sweeps that must agree are compared by.
pub type Results = std::collections::BTreeMap<String, (String, Vec<(String, i64, u64)>)>;

pub fn results(reg: &pixelx::registry::Registry) -> Results {
    let kept = [
        "train_loss",
        "lr",
        "epoch_train_loss",
        "test_nll",
        "test_bpd",
        "test_bpd8",
    ];
    reg.summaries(&Default::default())
        .unwrap()
        .into_iter()
        .map(|s| {
            let rows = reg
                .metric_history(&s.id)
                .unwrap()
                .into_iter()
                .filter(|m| kept.contains(&m.name.as_str()))
                .map(|m| (m.name, m.step, m.value.to_bits()))
                .collect();
            (s.id, (s.status.to_string(), rows))
        })
        .collect()
}
