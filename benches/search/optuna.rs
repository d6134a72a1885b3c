//! Optuna on the same tables: writes the table as JSON, runs `benches/optuna_replay.py` with the
//! project's `.venv` Python (Optuna pinned by `scripts/setup-optuna.sh`), reads one line per
//! (sampler, pruner, budget count, budget) back. The output is cached beside the grid under a
//! hash of the input and the script, so a second `just bench search` does not replay again.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::replay::Table;

/// One (sampler, pruner, count, budget) of Optuna, replayed over the seeds.
#[derive(Debug, Deserialize)]
pub struct OptunaRow {
    /// `random`, `tpe-univariate` or `tpe-multivariate`.
    pub sampler: String,
    /// `none` or `sh` (SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)).
    pub pruner: String,
    /// `trials` (a repeat uses up a trial) or `distinct` (it does not).
    pub count: String,
    pub budget: usize,
    /// Per seed: best value, epochs trained, trials asked, distinct configurations trained.
    pub runs: Vec<(f64, u64, usize, usize)>,
}

/// The table and the replay's settings as the script reads them.
fn input(table: &Table, budgets: &[(usize, usize)], parallel: usize, seeds: u64) -> serde_json::Value {
    let to_json = |v: &toml::Value| match v {
        toml::Value::Integer(i) => serde_json::json!(i),
        toml::Value::Float(x) => serde_json::json!(x),
        other => serde_json::json!(other.to_string()),
    };
    let axes: Vec<serde_json::Value> = table
        .axes
        .iter()
        .map(|(k, values)| serde_json::json!([k, values.iter().map(to_json).collect::<Vec<_>>()]))
        .collect();
    let rows: Vec<serde_json::Value> = table
        .rows
        .iter()
        .map(|(p, curve)| {
            let values: Vec<serde_json::Value> = table.axes.iter().map(|(k, _)| to_json(&p[k])).collect();
            let curve: Vec<f64> = curve
                .iter()
                .map(|v| if v.is_finite() { *v } else { 1e9 })
                .collect();
            serde_json::json!([values, curve])
        })
        .collect();
    let startup: serde_json::Map<String, serde_json::Value> = budgets
        .iter()
        .map(|(b, s)| (b.to_string(), serde_json::json!(s)))
        .collect();
    serde_json::json!({
        "axes": axes,
        "rows": rows,
        "parallel": parallel,
        "startup": startup,
        "budgets": budgets.iter().map(|(b, _)| b).collect::<Vec<_>>(),
        "seeds": seeds,
    })
}

/// Optuna's rows for `table`, from the cache in `dir` or by running the script (minutes).
pub fn replay(
    dir: &Path,
    table: &Table,
    budgets: &[(usize, usize)],
    parallel: usize,
    seeds: u64,
) -> Result<Vec<OptunaRow>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("benches/optuna_replay.py");
    let input = input(table, budgets, parallel, seeds).to_string();
    let mut hash = Sha256::new();
    hash.update(input.as_bytes());
    hash.update(std::fs::read(&script).with_context(|| format!("reading {}", script.display()))?);
    let cache = dir.join(format!("optuna-{}.jsonl", &hex::encode(hash.finalize())[..16]));
    // The script's input, to rerun it by hand: `.venv/bin/python benches/optuna_replay.py < …`.
    let saved = dir.join("optuna-input.json");
    std::fs::write(&saved, &input).with_context(|| format!("writing {}", saved.display()))?;
    let text = match std::fs::read_to_string(&cache) {
        Ok(text) => text,
        Err(_) => {
            let text = run(&root.join(".venv/bin/python"), &script, &input)?;
            std::fs::write(&cache, &text).with_context(|| format!("writing {}", cache.display()))?;
            text
        }
    };
    text.lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("a line of {}", cache.display())))
        .collect()
}

fn run(python: &Path, script: &Path, input: &str) -> Result<String> {
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {} (run scripts/setup-venv.sh)", python.display()))?;
    child
        .stdin
        .take()
        .context("the script's stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{} failed (scripts/setup-optuna.sh installs Optuna): {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}
