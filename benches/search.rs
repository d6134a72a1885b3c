//! `just bench search` (`cargo bench --bench search`): adaptive search and early stopping against
//! the grid, on real MNIST curves.
//!
//! A real grid (24 small models × 6 epochs) is trained once with `pixelx run` and cached under
//! `target/tmp/search-grid/` (later invocations reuse it: `pixelx run` finds every run done).
//! Its recorded test-bpd8 curves then form a table on which the searchers and pruners are
//! replayed over 50 seeds, without training: every suggestion is a recorded configuration, and a
//! pruned run costs only the epochs it trained. Printed: median best test bpd8 reached, how often
//! the grid's best configuration was found, and median epochs spent, for grid, random,
//! random+ASHA, TPE and TPE+ASHA.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use pixelx::registry::{Registry, RunFilter};
use pixelx::search::{replay_seeds_with_startup, replay_with_startup, Method, Pruner, ReplaySummary, Table};

const GRID: &str = r#"
[experiment]
name = "search_bench_grid"
description = "24 small models x 6 epochs, the table the search benchmark replays"
dataset = "mnist"

[defaults]
epochs = 6
batch_size = 32
out_hidden_fmaps = 8
hidden_layers = 1
causal_ksize = 5
epoch_samples = 0
train_subset = 2048
test_subset = 1000
lr_schedule = "constant"
seed = 1

[grid]
learning_rate = [1e-4, 3e-4, 1e-3, 2e-3, 5e-3, 1e-2]
hidden_fmaps = [8, 16]
hidden_ksize = [3, 5]

[scheduler]
devices = ["cpu", "cpu"]
"#;

const AXES: [&str; 3] = ["learning_rate", "hidden_fmaps", "hidden_ksize"];
const SEEDS: u64 = 50;
const PARALLEL: usize = 2;

/// Trains the grid (or finds it trained) and returns the folder holding its runs.
fn trained_grid() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("search-grid");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("grid.toml");
    std::fs::write(&file, GRID).unwrap();
    let data = std::env::var("PIXELX_DATA_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/data").into());
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_pixelx"))
        .arg("--runs-dir")
        .arg(dir.join("runs"))
        .args(["--data-dir", &data, "-q", "run"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    println!(
        "search: grid of 24 configurations x 6 epochs in {} ({}, {:.0} s)",
        dir.display(),
        String::from_utf8_lossy(&out.stdout).trim(),
        start.elapsed().as_secs_f64()
    );
    dir.join("runs")
}

/// The grid's recorded curves as a replay table.
fn table(runs: &Path) -> Table {
    let reg = Registry::open_read_only(&runs.join("registry.sqlite")).unwrap();
    let mut axes: Vec<(String, Vec<toml::Value>)> =
        AXES.iter().map(|a| (a.to_string(), Vec::new())).collect();
    let mut rows = Vec::new();
    for run in reg.summaries(&RunFilter::default()).unwrap() {
        let mut params = pixelx::search::Params::new();
        for (axis, values) in &mut axes {
            let v = match &run.params[axis.as_str()] {
                serde_json::Value::Number(n) if n.is_i64() => toml::Value::Integer(n.as_i64().unwrap()),
                serde_json::Value::Number(n) => toml::Value::Float(n.as_f64().unwrap()),
                other => panic!("unexpected {axis} = {other}"),
            };
            if !values.contains(&v) {
                values.push(v.clone());
            }
            params.insert(axis.clone(), v);
        }
        // A run that stopped early (diverged) counts as never getting better.
        let mut curve = run.curves.test_bpd8.clone();
        curve.resize(6, f64::INFINITY);
        rows.push((params, curve));
    }
    Table { axes, rows }
}

fn row(name: &str, trials: usize, s: &ReplaySummary, grid: &ReplaySummary, found: f64) {
    println!(
        "  {name:<16} {trials:>6}  {:>9.4}  {:>+8.2}%  {:>6.0}%  {:>9.0}  {:>6.0}%  {:>7.1}",
        s.median_best,
        (s.median_best / grid.median_best - 1.0) * 100.0,
        found * 100.0,
        s.median_epochs,
        s.median_epochs / grid.median_epochs * 100.0,
        s.median_pruned
    );
}

fn main() {
    let wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    if !(wanted.is_empty() || wanted.iter().any(|w| "search".contains(w.as_str()))) {
        return;
    }
    let table = table(&trained_grid());
    table.validate().expect("a complete grid");
    let asha = Pruner::Asha {
        grace_epochs: 1,
        reduction_factor: 3,
    };
    let grid = replay_seeds_with_startup(&table, Method::Grid, &Pruner::None, 0, PARALLEL, 1, 10);
    // The summary over seeds, and how often a study found the grid's best configuration.
    let replay = |method, pruner: &Pruner, trials, startup| {
        let found = (0..SEEDS)
            .filter(|&seed| {
                let r = replay_with_startup(&table, method, pruner, trials, PARALLEL, seed, startup);
                r.best <= grid.median_best
            })
            .count() as f64
            / SEEDS as f64;
        let summary = replay_seeds_with_startup(&table, method, pruner, trials, PARALLEL, SEEDS, startup);
        (summary, found)
    };
    println!(
        "  replayed over {SEEDS} seeds, {PARALLEL} runs in parallel; ASHA: grace 1 epoch, reduction factor 3; \
         TPE starts with 10 random trials (4 below 12 trials)"
    );
    println!(
        "  {:<16} {:>6}  {:>9}  {:>9}  {:>7}  {:>9}  {:>7}  {:>7}",
        "method", "trials", "best bpd8", "vs grid", "found", "epochs", "of grid", "pruned"
    );
    row("grid", 24, &grid, &grid, 1.0);
    for trials in [8, 12, 24] {
        let startup = if trials < 12 { 4 } else { 10 };
        let (random, random_found) = replay(Method::Random, &Pruner::None, trials, startup);
        row("random", trials, &random, &grid, random_found);
        let (random_asha, found) = replay(Method::Random, &asha, trials, startup);
        row("random+ASHA", trials, &random_asha, &grid, found);
        let (tpe, tpe_found) = replay(Method::TpeDistinct, &Pruner::None, trials, startup);
        row("tpe", trials, &tpe, &grid, tpe_found);
        let (tpe_asha, found) = replay(Method::TpeDistinct, &asha, trials, startup);
        row("tpe+ASHA", trials, &tpe_asha, &grid, found);
        if trials == 24 {
            let within = random_asha.median_best <= grid.median_best * 1.01;
            let cheap = random_asha.median_epochs <= 0.4 * grid.median_epochs;
            println!(
                "  goal: random+ASHA within 1% of the grid's best with <= 40% of its epochs: {}",
                if within && cheap { "met" } else { "not met" }
            );
        }
        println!(
            "  tpe vs random at {trials} trials: median best {:.4} vs {:.4}, the grid's best found in {:.0}% vs {:.0}% of seeds",
            tpe.median_best,
            random.median_best,
            tpe_found * 100.0,
            random_found * 100.0
        );
    }
}
