//! Everything the integration tests share: the real `pixelx` binary and a runner that explains
//! its failures ([`command`]), tiny models and training commands ([`train`]), guarded processes
//! and signals ([`process`]), the registry of a runs folder, the dashboard's server, an HTTP
//! client and a headless browser ([`http`], [`browser`]), synthetic journals ([`synthetic`]) and
//! a local Slurm cluster ([`cluster`]). A helper two test files need belongs here, not in either.
#![allow(dead_code)]

pub mod browser;
pub mod cluster;
pub mod command;
pub mod http;
pub mod process;
pub mod synthetic;
pub mod train;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use pixelx::config::{LrSchedule, RunConfig};
use pixelx::registry::Registry;

pub use command::TestCommand;
pub use process::{mkfifo, output_guarded, signal, wait_for, wait_guarded, Killed, SIGINT, SIGKILL, SIGTERM};
pub use train::{set_flag, spawn_train, tiny_cpu_train, tiny_train, trained_run};

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
        // Pinned: the default `auto` is bf16 on CPUs that have it and fp32 elsewhere, and these
        // tests compare numbers bit for bit (determinism, resume) against fp32 runs.
        precision: pixelx::precision::Precision::Fp32,
        ..RunConfig::default()
    }
}

/// An experiment name and description that would inject markup or climb folders if a page or a
/// path used them raw.
pub const HOSTILE_NAME: &str = "<script>alert(1)</script> ../../x \"q\" 'q'";
pub const HOSTILE_DESCRIPTION: &str = "<img src=x onerror=alert(2)> & ../../etc/passwd";

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
pub fn run_in(runs: &Path, args: &[&str]) -> (bool, String, String) {
    TestCommand::pixelx_in(runs).args(args).run()
}

/// The registry of the runs folder `runs`, opened for writing (created if missing).
pub fn registry(runs: &Path) -> Registry {
    let path = runs.join("registry.sqlite");
    Registry::open(&path).unwrap_or_else(|e| panic!("opening {}: {e:#}", path.display()))
}

/// The registry of the runs folder `runs`, opened read-only as `pixelx report` opens it.
pub fn registry_read_only(runs: &Path) -> Registry {
    let path = runs.join("registry.sqlite");
    Registry::open_read_only(&path).unwrap_or_else(|e| panic!("opening {} read-only: {e:#}", path.display()))
}

/// `pixelx serve --port 0` over the runs folder `runs` with more `serve` flags: the process
/// (killed when dropped) and the `HOST:PORT` it printed.
pub fn serve(runs: &Path, extra: &[&str]) -> (Killed, String) {
    let mut child = pixelx()
        .arg("--runs-dir")
        .arg(runs)
        .args(["serve", "--port", "0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("pixelx dashboard on http://")
        .and_then(|a| a.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    (Killed(child), addr)
}

/// The `[defaults]` lines of a model small enough to train in seconds (experiment files), in
/// fp32 whatever the CPU (the default `auto` would make results depend on the machine; `auto`
/// has tests of its own).
pub const TINY_MODEL_TOML: &str = "batch_size = 32
hidden_fmaps = 8
out_hidden_fmaps = 8
hidden_layers = 1
causal_ksize = 5
precision = \"fp32\"
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
