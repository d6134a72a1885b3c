//! `just bench search` (`cargo bench --bench search`): adaptive search and early stopping against
//! the grid and against Optuna, on real MNIST curves.
//!
//! Two real grids are trained once with `pixelx run` and cached under `target/tmp/` (later
//! invocations reuse them: `pixelx run` finds every run done): 24 small models × 6 epochs, and
//! 72 smaller ones × 4 epochs (learning rate × width × kernel × layers) where the budgets, 10%,
//! 20% and 40% of the grid, are well below its size. Their recorded test-bpd8 curves, read in a
//! canonical order (`table.rs`), form tables on which pixelx's searchers and pruners are
//! replayed (`replay.rs`) without training, and so are Optuna's (`benches/optuna_replay.py`, with
//! the same in-flight count and pruner). Printed per budget: how often the grid's best
//! configuration was found over the seeds, with its 95% interval, and the median epochs spent.

mod optuna;
// Shared with tests/it/search_replay.rs, which uses parts the benchmark does not.
#[allow(dead_code)]
mod replay;
mod table;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use pixelx::search::{startup_for_budget, Pruner};
use replay::{replay_with_startup, Method, ReplayResult, Table};

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

const GRID_LARGE: &str = r#"[experiment]
name = "search_bench_grid_large"
description = "72 small models x 4 epochs, the larger table the search benchmark replays"
dataset = "mnist"

[defaults]
epochs = 4
batch_size = 32
out_hidden_fmaps = 8
causal_ksize = 5
epoch_samples = 0
train_subset = 512
test_subset = 256
lr_schedule = "constant"
seed = 1

[grid]
learning_rate = [3e-4, 1e-3, 3e-3, 1e-2]
hidden_fmaps = [4, 8, 16]
hidden_ksize = [3, 5]
hidden_layers = [1, 2, 3]

[scheduler]
devices = ["cpu", "cpu"]
"#;

/// One grid the benchmark trains and replays.
struct Grid {
    folder: &'static str,
    toml: &'static str,
    axes: &'static [&'static str],
    epochs: usize,
    /// Trial budgets; TPE's random start-up trials are pixelx's default for each
    /// ([`startup_for_budget`]), for Optuna too.
    budgets: &'static [usize],
}

const GRIDS: [Grid; 2] = [
    Grid {
        folder: "search-grid",
        toml: GRID,
        axes: &["learning_rate", "hidden_fmaps", "hidden_ksize"],
        epochs: 6,
        budgets: &[8, 12, 24],
    },
    Grid {
        folder: "search-grid-large",
        toml: GRID_LARGE,
        axes: &["learning_rate", "hidden_fmaps", "hidden_ksize", "hidden_layers"],
        epochs: 4,
        // 10%, 20% and 40% of 72.
        budgets: &[7, 14, 29],
    },
];

const PARALLEL: usize = 2;
const ASHA: Pruner = Pruner::Asha {
    grace_epochs: 1,
    reduction_factor: 3,
};

/// Seeds per row: 500, or `PIXELX_BENCH_SEEDS`.
fn seeds() -> u64 {
    std::env::var("PIXELX_BENCH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500)
}

/// Seeds per Optuna row: [`seeds`], or `PIXELX_BENCH_OPTUNA_SEEDS` (Optuna's ask/tell costs
/// milliseconds a trial, pixelx's replay microseconds).
fn optuna_seeds() -> u64 {
    std::env::var("PIXELX_BENCH_OPTUNA_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(seeds)
}

/// Trains the grid (or finds it trained) and returns the folder holding its runs.
fn trained(grid: &Grid) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(grid.folder);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("grid.toml");
    std::fs::write(&file, grid.toml).unwrap();
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
        "search: {} in {} ({}, {:.0} s)",
        grid.folder,
        dir.display(),
        String::from_utf8_lossy(&out.stdout).trim(),
        start.elapsed().as_secs_f64()
    );
    dir
}

/// A share found over `n` seeds, with its Wilson 95% interval.
#[derive(Debug, Clone, Copy)]
struct Share {
    p: f64,
    lo: f64,
    hi: f64,
}

fn wilson(found: usize, n: usize) -> Share {
    let (k, n) = (found as f64, n.max(1) as f64);
    let z = 1.959_963_984_540_054_f64;
    let p = k / n;
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z / (1.0 + z * z / n) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    Share {
        p,
        lo: (centre - half).max(0.0),
        hi: (centre + half).min(1.0),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

/// One row's figures over the seeds: share found, median epochs, median trials asked, seeds
/// whose study ended short of its budget of distinct configurations.
struct Cell {
    found: Share,
    epochs: f64,
    trials: f64,
    short: usize,
}

impl Cell {
    /// From per-seed (best, epochs, trials, distinct).
    fn of(runs: &[(f64, u64, usize, usize)], best: f64, budget: usize) -> Self {
        let found = runs.iter().filter(|r| r.0 <= best).count();
        Self {
            found: wilson(found, runs.len()),
            epochs: median(runs.iter().map(|r| r.1 as f64).collect()),
            trials: median(runs.iter().map(|r| r.2 as f64).collect()),
            short: runs.iter().filter(|r| r.3 < budget).count(),
        }
    }

    fn show(&self) -> String {
        format!(
            "{:>3.0}% [{:>2.0}-{:>3.0}] {:>4.0} ep",
            self.found.p * 100.0,
            self.found.lo * 100.0,
            self.found.hi * 100.0,
            self.epochs
        )
    }
}

const SAMPLERS: [(&str, &str, Method); 3] = [
    ("random", "random", Method::Random),
    ("TPE univariate", "tpe-univariate", Method::TpeDistinct),
    (
        "TPE multivariate",
        "tpe-multivariate",
        Method::TpeMultivariateDistinct,
    ),
];

fn pixelx_cell(
    table: &Table,
    best: f64,
    method: Method,
    pruner: &Pruner,
    (budget, startup): (usize, usize),
) -> Cell {
    let runs: Vec<(f64, u64, usize, usize)> = (0..seeds())
        .map(|seed| {
            let r: ReplayResult = replay_with_startup(table, method, pruner, budget, PARALLEL, seed, startup);
            (r.best, r.epochs_spent, r.trials, r.distinct)
        })
        .collect();
    Cell::of(&runs, best, budget)
}

/// Prints one grid's side-by-side table and the verdicts against Optuna.
fn compare(grid: &Grid) {
    let dir = trained(grid);
    let table = table::from_registry(&dir.join("runs/registry.sqlite"), grid.axes, grid.epochs).unwrap();
    table.validate().expect("a complete grid");
    let full = replay_with_startup(&table, Method::Grid, &Pruner::None, 0, PARALLEL, 0, 10);
    let best = full.best;
    let seeds = seeds();
    let budgets: Vec<(usize, usize)> = grid.budgets.iter().map(|&b| (b, startup_for_budget(b))).collect();
    let optuna = optuna::replay(&dir, &table, &budgets, PARALLEL, optuna_seeds()).unwrap_or_else(|e| {
        println!("  Optuna not replayed: {e:#}");
        Vec::new()
    });
    let optuna_cell = |sampler: &str, pruner: &str, count: &str, budget: usize| {
        optuna
            .iter()
            .find(|r| r.sampler == sampler && r.pruner == pruner && r.count == count && r.budget == budget)
            .map(|r| Cell::of(&r.runs, best, budget))
    };
    println!(
        "  {} configurations x {} epochs: grid best {best:.4} in {} epochs; {seeds} seeds ({} for Optuna), {PARALLEL} in flight; \
         pruning: pixelx ASHA / Optuna SuccessiveHalving, min resource 1, reduction factor 3; TPE start-up {}",
        table.rows.len(),
        grid.epochs,
        full.epochs_spent,
        optuna_seeds(),
        budgets
            .iter()
            .map(|(b, s)| format!("{s} of {b}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    println!(
        "  {:<26} {:>6}  {:<24}  {:<24}  {:<24} {:>7} {:>7}",
        "method", "budget", "pixelx", "Optuna, in trials", "Optuna, in distinct", "trials", "short"
    );
    for &(budget, startup) in &budgets {
        for (name, sampler, method) in SAMPLERS {
            for (pruned, pruner, optuna_pruner) in [("", Pruner::None, "none"), (" + pruning", ASHA, "sh")] {
                let ours = pixelx_cell(&table, best, method, &pruner, (budget, startup));
                let trials = optuna_cell(sampler, optuna_pruner, "trials", budget);
                let distinct = optuna_cell(sampler, optuna_pruner, "distinct", budget);
                let show = |c: &Option<Cell>| c.as_ref().map_or("-".to_string(), Cell::show);
                let verdict = match &distinct {
                    Some(o) if ours.found.hi < o.found.lo => "  Optuna wins",
                    _ => "",
                };
                let short = distinct.as_ref().map_or("-".into(), |c| c.short.to_string());
                println!(
                    "  {:<26} {budget:>6}  {:<24}  {:<24}  {:<24} {:>7} {:>7}{verdict}",
                    format!("{name}{pruned}"),
                    ours.show(),
                    show(&trials),
                    show(&distinct),
                    distinct
                        .as_ref()
                        .map_or("-".into(), |c| format!("{:.0}", c.trials)),
                    format!("{}/{short}", ours.short),
                );
            }
        }
    }
}

fn main() {
    let wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    if !(wanted.is_empty() || wanted.iter().any(|w| "search".contains(w.as_str()))) {
        return;
    }
    println!(
        "  found: share of seeds whose study reached the grid's best test bpd8 [95% interval]; ep: median \
         epochs trained. pixelx never trains a configuration twice; Optuna's repeats are answered from the \
         earlier trial at no cost, counted as trials (\"in trials\") or not (\"in distinct\": it asks until \
         the budget's distinct configurations are trained; \"trials\" is the median it asked). A study stops \
         after 64 asks in a row that all repeat a configuration (pixelx's rule: 64 redraws, then its space \
         counts as exhausted); short: seeds, pixelx/Optuna, ending below the budget in distinct configurations. \
         TPE's random start-up trials: a quarter of the budget, 2 to 10, for both tools"
    );
    for grid in &GRIDS {
        compare(grid);
    }
}
