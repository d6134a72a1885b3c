//! Optuna on the same tables: writes the table as JSON, runs `benches/optuna_replay.py` with the
//! project's `.venv` Python (Optuna pinned by `scripts/setup-optuna.sh`), one process per
//! sampler and at most [`PROCESSES`] at once, and reads one line per (sampler, pruner, budget
//! count, budget) back. Each sampler's output is cached beside the grid under a hash of the
//! input, the script and the sampler, so a second `just bench search` does not replay again and
//! an interrupted one keeps the samplers it finished.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::replay::Table;

/// Optuna's samplers as the script names them, the slowest first (univariate TPE asks the most
/// trials when the budget is counted in distinct configurations).
const SAMPLERS: [&str; 3] = ["tpe-univariate", "tpe-multivariate", "random"];

/// Replay processes at once: each is one Python thread, and the machine's other work keeps the
/// rest of its cores.
const PROCESSES: usize = 2;

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
    let code = std::fs::read(&script).with_context(|| format!("reading {}", script.display()))?;
    // The script's input, to rerun it by hand: `.venv/bin/python benches/optuna_replay.py
    // SAMPLER < …`.
    let saved = dir.join("optuna-input.json");
    std::fs::write(&saved, &input).with_context(|| format!("writing {}", saved.display()))?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let outputs: Vec<Result<Vec<(usize, String)>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..PROCESSES)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(sampler) = SAMPLERS.get(i) else {
                            return Ok(done);
                        };
                        done.push((
                            i,
                            cached(
                                dir,
                                &root.join(".venv/bin/python"),
                                &script,
                                &code,
                                &input,
                                sampler,
                            )?,
                        ));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| bail!("an Optuna replay thread panicked"))
            })
            .collect()
    });
    let mut texts = Vec::new();
    for output in outputs {
        texts.extend(output?);
    }
    texts.sort();
    texts
        .iter()
        .flat_map(|(_, text)| text.lines())
        .map(|l| serde_json::from_str(l).context("a line of the Optuna replay's output"))
        .collect()
}

/// One sampler's output: from its cache file, or by running the script and caching what it
/// prints.
fn cached(
    dir: &Path,
    python: &Path,
    script: &Path,
    code: &[u8],
    input: &str,
    sampler: &str,
) -> Result<String> {
    let mut hash = Sha256::new();
    hash.update(input.as_bytes());
    hash.update(code);
    hash.update(sampler.as_bytes());
    let cache = dir.join(format!(
        "optuna-{sampler}-{}.jsonl",
        &hex::encode(hash.finalize())[..16]
    ));
    if let Ok(text) = std::fs::read_to_string(&cache) {
        return Ok(text);
    }
    let text = run(python, script, sampler, input)?;
    std::fs::write(&cache, &text).with_context(|| format!("writing {}", cache.display()))?;
    Ok(text)
}

fn run(python: &Path, script: &Path, sampler: &str, input: &str) -> Result<String> {
    let mut child = Command::new(python)
        .arg(script)
        .arg(sampler)
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
