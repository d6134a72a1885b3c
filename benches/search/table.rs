//! A trained grid's registry as a replay [`Table`], in a canonical order.
//!
//! The registry lists runs in the order they were recorded, which two trainings of the same
//! grid need not share (two workers finish in either order). The table's order decides which
//! configuration a seed's draws map to, so the benchmark reads it canonically: each axis's
//! values sorted (numbers numerically), rows sorted by their position on the axes. Two
//! trainings with the same curves then print the same replay.

use std::cmp::Ordering;
use std::path::Path;

use anyhow::{bail, Context, Result};
use pixelx::registry::{Registry, RunFilter};
use pixelx::search::{values_equal, Params};

use super::replay::Table;

/// The runs of the registry at `path` as a table over `axes` (their test bpd8 per epoch), in
/// the registry's order. A run that stopped before `epochs` (diverged) counts as never getting
/// better: its curve is padded with +inf.
pub fn registry_order(path: &Path, axes: &[&str], epochs: usize) -> Result<Table> {
    let reg = Registry::open_read_only(path).with_context(|| format!("opening {}", path.display()))?;
    let mut columns: Vec<(String, Vec<toml::Value>)> =
        axes.iter().map(|a| (a.to_string(), Vec::new())).collect();
    let mut rows = Vec::new();
    let runs = reg
        .summaries(&RunFilter::default())
        .with_context(|| format!("reading the runs of {}", path.display()))?;
    for run in runs {
        let mut params = Params::new();
        for (axis, values) in &mut columns {
            let v = match run.params.get(axis.as_str()) {
                Some(serde_json::Value::Number(n)) => match n.as_i64() {
                    Some(i) => toml::Value::Integer(i),
                    None => toml::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
                },
                other => bail!("run {}: `{axis}` is {other:?}, not a number", run.id),
            };
            if !values.iter().any(|w| values_equal(w, &v)) {
                values.push(v.clone());
            }
            params.insert(axis.clone(), v);
        }
        let mut curve = run.curves.test_bpd8.clone();
        curve.resize(epochs, f64::INFINITY);
        rows.push((params, curve));
    }
    Ok(Table { axes: columns, rows })
}

/// [`registry_order`], then [`canonical`]: what the benchmark replays.
pub fn from_registry(path: &Path, axes: &[&str], epochs: usize) -> Result<Table> {
    Ok(canonical(registry_order(path, axes, epochs)?))
}

/// Numbers numerically, then anything else by its TOML text.
fn compare(a: &toml::Value, b: &toml::Value) -> Ordering {
    let num = |v: &toml::Value| match v {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(x) => Some(*x),
        _ => None,
    };
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.to_string().cmp(&b.to_string()),
    }
}

/// The table with each axis's values sorted and its rows sorted by configuration (their
/// position on each axis, in axis order): the same for any order of the same runs.
pub fn canonical(mut table: Table) -> Table {
    for (_, values) in &mut table.axes {
        values.sort_by(compare);
    }
    let rank = |p: &Params| -> Vec<usize> {
        table
            .axes
            .iter()
            .map(|(k, values)| {
                p.get(k)
                    .and_then(|v| values.iter().position(|w| values_equal(w, v)))
                    .unwrap_or(usize::MAX)
            })
            .collect()
    };
    let mut rows = std::mem::take(&mut table.rows);
    rows.sort_by_cached_key(|(p, _)| rank(p));
    table.rows = rows;
    table
}
