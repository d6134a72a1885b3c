//! The experiment file's schema: its tables as serde types, and the check of the names it uses
//! (run before deserialising, so that a typo is reported with the nearest valid key rather than
//! as serde's "unknown field").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::keys::{keys_under, AXIS_KEYS, RUN_KEYS};
use super::sources::suggest;
use super::sweep::{PrunerSettings, SchedulerSettings, SearchSettings};
use crate::data::DatasetKind;
use crate::search::Space;

/// Run parameters as written in a table of the file.
pub type Table = BTreeMap<String, toml::Value>;

/// Sweeps larger than this are refused unless `experiment.max_runs` says otherwise: a typo in a
/// grid should not queue a million runs.
pub const DEFAULT_MAX_RUNS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentInfo {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub dataset: Option<DatasetKind>,
    /// The largest sweep this file may expand to.
    #[serde(default = "default_max_runs")]
    pub max_runs: usize,
}

fn default_max_runs() -> usize {
    DEFAULT_MAX_RUNS
}

impl Default for ExperimentInfo {
    fn default() -> Self {
        Self {
            name: String::new(),
            description: String::new(),
            dataset: None,
            max_runs: DEFAULT_MAX_RUNS,
        }
    }
}

impl ExperimentInfo {
    /// An experiment known by its name only (`adhoc`, `imported`).
    pub fn named(name: &str, description: &str) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            ..Self::default()
        }
    }
}

/// `[random]`: samples drawn up front from a space, added to the grid's runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomSearch {
    pub samples: usize,
    #[serde(default)]
    pub seed: u64,
    pub space: Space,
}

/// The file as written (after layering), before expansion.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentFile {
    pub experiment: ExperimentInfo,
    #[serde(default)]
    pub defaults: Table,
    #[serde(default)]
    pub grid: BTreeMap<String, Vec<toml::Value>>,
    #[serde(default)]
    pub points: Vec<Table>,
    #[serde(default)]
    pub exclude: Vec<Table>,
    #[serde(default)]
    pub random: Option<RandomSearch>,
    #[serde(default)]
    pub search: Option<SearchSettings>,
    #[serde(default)]
    pub pruner: PrunerSettings,
    #[serde(default)]
    pub scheduler: SchedulerSettings,
}

fn check_keys(table: &toml::Table, valid: &[&str], at: &str) -> Result<(), String> {
    for key in table.keys() {
        if !valid.contains(&key.as_str()) {
            return Err(format!("unknown key `{at}{key}`{}", suggest(key, valid)));
        }
    }
    Ok(())
}

/// Checks the names used in the file (so typos are caught with a suggestion).
pub(super) fn check_structure(doc: &toml::Table) -> Result<(), String> {
    if !doc.contains_key("experiment") {
        return Err("missing `[experiment]` table with at least `name`".into());
    }
    walk(doc, "")
}

/// Checks the keys of `table`, found at the dotted `path`, and of the tables under it.
fn walk(table: &toml::Table, path: &str) -> Result<(), String> {
    let Some(valid) = keys_under(path) else {
        return Ok(());
    };
    let at = if path.is_empty() {
        String::new()
    } else {
        format!("{path}.")
    };
    check_keys(table, valid, &at)?;
    for (key, value) in table {
        let child = format!("{at}{key}");
        if path == "random.space" || path == "search.space" {
            check_axis(value, &child)?;
            continue;
        }
        match value {
            toml::Value::Table(t) => walk(t, &child)?,
            toml::Value::Array(items) if path.is_empty() && (key == "points" || key == "exclude") => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(t) = item.as_table() {
                        check_keys(t, &RUN_KEYS, &format!("{key}[{i}]."))?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks that an axis of a search space is written as a table of known keys.
fn check_axis(value: &toml::Value, at: &str) -> Result<(), String> {
    match value {
        toml::Value::Table(t) => check_keys(t, &AXIS_KEYS, &format!("{at}.")),
        toml::Value::Array(_) => Err(format!(
            "`{at}` is a list; a search axis is a table, e.g. `{{ choice = [...] }}` or `{{ uniform = [lo, hi] }}`"
        )),
        _ => Err(format!(
            "`{at}` must be a table such as `{{ log_uniform = [1e-4, 1e-2] }}` or `{{ choice = [...] }}`"
        )),
    }
}
