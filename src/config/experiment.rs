//! Experiment files: a grid (plus explicit points and random samples) of run configurations.
//!
//! Values are layered with figment: built-in defaults < the file < `PIXELX_<PARAM>` environment
//! variables < `--set key=value`. Every expanded run is validated before anything starts; errors
//! name the file and key, give line:column for TOML syntax, and suggest the nearest valid key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::RunConfig;
use crate::precision::Precision;

/// Run parameters, i.e. the keys of `[defaults]`, grid axes, points and exclusions.
pub const RUN_KEYS: [&str; 20] = [
    "dataset",
    "epochs",
    "batch_size",
    "causal_ksize",
    "hidden_ksize",
    "data_channels",
    "color_levels",
    "hidden_fmaps",
    "out_hidden_fmaps",
    "hidden_layers",
    "learning_rate",
    "weight_decay",
    "max_norm",
    "epoch_samples",
    "seed",
    "device",
    "lr_schedule",
    "train_subset",
    "test_subset",
    "precision",
];

const SECTIONS: [&str; 7] = [
    "experiment",
    "defaults",
    "grid",
    "points",
    "exclude",
    "random",
    "scheduler",
];
const EXPERIMENT_KEYS: [&str; 3] = ["name", "description", "dataset"];
const SCHEDULER_KEYS: [&str; 3] = ["devices", "runs_per_device", "retries"];
const RANDOM_KEYS: [&str; 3] = ["samples", "seed", "space"];

/// A problem with an experiment file, located as precisely as possible.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ExperimentError {
    pub file: String,
    pub message: String,
}

type Table = BTreeMap<String, toml::Value>;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentInfo {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub dataset: Option<String>,
}

/// Devices to spread runs over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Devices {
    /// `"auto"` or `"cpu"`.
    Named(String),
    /// Explicit slots, e.g. `["cuda:0", "cuda:1"]` or `["cpu", "cpu"]`.
    List(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerSettings {
    pub devices: Devices,
    pub runs_per_device: usize,
    /// Extra attempts for a run whose worker died or failed for a reason that may not repeat.
    pub retries: u32,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            devices: Devices::Named("auto".into()),
            runs_per_device: 1,
            retries: 0,
        }
    }
}

/// One axis of random search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Distribution {
    Uniform([f64; 2]),
    LogUniform([f64; 2]),
    IntUniform([i64; 2]),
    Choice(Vec<toml::Value>),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomSearch {
    pub samples: usize,
    #[serde(default)]
    pub seed: u64,
    pub space: BTreeMap<String, Distribution>,
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
    pub scheduler: SchedulerSettings,
}

/// One run of an experiment: its identity and configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    pub id: String,
    pub config: RunConfig,
}

/// An expanded, validated experiment.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub file: PathBuf,
    pub info: ExperimentInfo,
    pub scheduler: SchedulerSettings,
    pub runs: Vec<RunSpec>,
}

/// A run's identity: a stable hash of its experiment and fully resolved configuration.
pub fn run_id(experiment: &str, config: &RunConfig) -> String {
    let mut h = Sha256::new();
    h.update(experiment.as_bytes());
    h.update([0]);
    h.update(serde_json::to_vec(&identity(config)).unwrap_or_default());
    hex::encode(h.finalize())[..12].to_owned()
}

/// What a run id hashes: the config in field order, minus parameters added after runs were
/// first recorded while they hold their default. Registries made before `precision` existed
/// thus keep their run ids (a test pins one); a bf16 run gets an id of its own.
fn identity(config: &RunConfig) -> serde_json::Value {
    let mut value = serde_json::to_value(config).unwrap_or_default();
    if let Some(fields) = value.as_object_mut() {
        if config.precision == Precision::Fp32 {
            fields.shift_remove("precision");
        }
    }
    value
}

/// The nearest valid key, when one is close enough to be a likely typo.
fn suggest(key: &str, valid: &[&str]) -> String {
    valid
        .iter()
        .map(|v| (strsim::levenshtein(key, v), v))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, v)| format!("; did you mean `{v}`?"))
        .unwrap_or_default()
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
fn check_structure(doc: &toml::Table) -> Result<(), String> {
    check_keys(doc, &SECTIONS, "")?;
    let table = |name: &str| doc.get(name).and_then(toml::Value::as_table);
    if !doc.contains_key("experiment") {
        return Err("missing `[experiment]` table with at least `name`".into());
    }
    if let Some(t) = table("experiment") {
        check_keys(t, &EXPERIMENT_KEYS, "experiment.")?;
    }
    for section in ["defaults", "grid"] {
        if let Some(t) = table(section) {
            check_keys(t, &RUN_KEYS, &format!("{section}."))?;
        }
    }
    for section in ["points", "exclude"] {
        for (i, t) in doc
            .get(section)
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(t) = t.as_table() {
                check_keys(t, &RUN_KEYS, &format!("{section}[{i}]."))?;
            }
        }
    }
    if let Some(t) = table("scheduler") {
        check_keys(t, &SCHEDULER_KEYS, "scheduler.")?;
    }
    if let Some(t) = table("random") {
        check_keys(t, &RANDOM_KEYS, "random.")?;
        if let Some(space) = t.get("space").and_then(toml::Value::as_table) {
            check_keys(space, &RUN_KEYS, "random.space.")?;
        }
    }
    Ok(())
}

/// `line:column` of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Parses a `--set key=value` override: `key` is a run parameter (meaning `defaults.key`) or a
/// dotted path; `value` is read as TOML, falling back to a plain string.
pub fn parse_override(s: &str) -> Result<(String, toml::Value), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("--set {s}: expected key=value"))?;
    let key = key.trim();
    let path = if RUN_KEYS.contains(&key) {
        format!("defaults.{key}")
    } else {
        key.to_owned()
    };
    let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    Ok((path, value))
}

impl Experiment {
    /// Reads, layers, expands and validates an experiment file.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, ExperimentError> {
        let name = path.display().to_string();
        let err = |message: String| ExperimentError {
            file: name.clone(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let doc: toml::Table = toml::from_str(&text).map_err(|e| {
            let at = e.span().map(|s| line_col(&text, s.start));
            let (line, col) = at.unwrap_or((0, 0));
            err(format!("{line}:{col}: TOML syntax error: {}", e.message()))
        })?;
        check_structure(&doc).map_err(err)?;

        let mut figment = Figment::from(Toml::string(&text)).merge(
            Env::prefixed("PIXELX_")
                .filter(|k| RUN_KEYS.contains(&k.as_str().to_lowercase().as_str()))
                .map(|k| format!("defaults.{}", k.as_str().to_lowercase()).into()),
        );
        for o in overrides {
            let (key, value) = parse_override(o).map_err(err)?;
            let key_leaf = key.rsplit('.').next().unwrap_or(&key).to_owned();
            if key.starts_with("defaults.") && !RUN_KEYS.contains(&key_leaf.as_str()) {
                return Err(err(format!(
                    "--set: unknown key `{key_leaf}`{}",
                    suggest(&key_leaf, &RUN_KEYS)
                )));
            }
            figment = figment.merge(Serialized::global(&key, value));
        }
        let file: ExperimentFile = figment.extract().map_err(|e| {
            let e = e.into_iter().next().map(|e| {
                let path = e.path.join(".");
                let kind = e.kind.to_string();
                if path.is_empty() {
                    kind
                } else {
                    format!("`{path}`: {kind}")
                }
            });
            err(e.unwrap_or_else(|| "invalid experiment file".into()))
        })?;
        let runs = expand(&file).map_err(err)?;
        Ok(Self {
            file: path.to_owned(),
            info: file.experiment,
            scheduler: file.scheduler,
            runs,
        })
    }

    /// Parameters whose value differs between runs, in `RUN_KEYS` order.
    pub fn varying_keys(&self) -> Vec<&'static str> {
        let configs: Vec<serde_json::Value> = self
            .runs
            .iter()
            .map(|r| serde_json::to_value(&r.config).unwrap_or_default())
            .collect();
        RUN_KEYS
            .iter()
            .copied()
            .filter(|k| configs.windows(2).any(|w| w[0].get(k) != w[1].get(k)))
            .collect()
    }
}

/// Applies `table` over `base`, key by key; the result must still be a valid `RunConfig`.
fn overlay(base: &RunConfig, table: &Table, at: &str) -> Result<RunConfig, String> {
    let mut value = toml::Value::try_from(base).map_err(|e| e.to_string())?;
    let fields = value.as_table_mut().ok_or("config is not a table")?;
    for (k, v) in table {
        fields.insert(k.clone(), v.clone());
    }
    value
        .try_into()
        .map_err(|e: toml::de::Error| format!("{at}: {}", e.message().trim()))
}

fn matches(config: &RunConfig, pattern: &Table) -> bool {
    let value = toml::Value::try_from(config).ok();
    let fields = value.as_ref().and_then(toml::Value::as_table);
    pattern
        .iter()
        .all(|(k, v)| fields.and_then(|f| f.get(k)).is_some_and(|x| values_equal(x, v)))
}

/// TOML equality that treats `2` and `2.0` alike, as a user writing an exclusion would.
fn values_equal(a: &toml::Value, b: &toml::Value) -> bool {
    match (a, b) {
        (toml::Value::Integer(x), toml::Value::Float(y))
        | (toml::Value::Float(y), toml::Value::Integer(x)) => *x as f64 == *y,
        _ => a == b,
    }
}

fn expand(file: &ExperimentFile) -> Result<Vec<RunSpec>, String> {
    let mut base = RunConfig::default();
    if let Some(d) = &file.experiment.dataset {
        base.dataset = d.clone();
    }
    let base = overlay(&base, &file.defaults, "defaults")?;
    let mut tables: Vec<(String, Table)> = vec![(String::new(), Table::new())];
    for (key, values) in &file.grid {
        if values.is_empty() {
            return Err(format!("grid.{key} is an empty list, which gives no runs"));
        }
        tables = tables
            .into_iter()
            .flat_map(|(_, t)| {
                values.iter().map(move |v| {
                    let mut t = t.clone();
                    t.insert(key.clone(), v.clone());
                    (format!("grid point {t:?}"), t)
                })
            })
            .collect();
    }
    // Without a grid, explicit points and random samples are the runs; the bare defaults are
    // not a run of their own.
    if file.grid.is_empty() && (!file.points.is_empty() || file.random.is_some()) {
        tables.clear();
    }
    tables.extend(
        file.points
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("points[{i}]"), p.clone())),
    );
    if let Some(random) = &file.random {
        tables.extend(
            random_points(random)?
                .into_iter()
                .enumerate()
                .map(|(i, t)| (format!("random sample {i}"), t)),
        );
    }
    let mut runs: Vec<RunSpec> = Vec::new();
    for (at, table) in tables {
        let config = overlay(&base, &table, &at)?;
        if file.exclude.iter().any(|e| matches(&config, e)) {
            continue;
        }
        config.validate().map_err(|e| {
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            }
        })?;
        let id = run_id(&file.experiment.name, &config);
        if !runs.iter().any(|r| r.id == id) {
            runs.push(RunSpec { id, config });
        }
    }
    if file.experiment.name.trim().is_empty() {
        return Err("`experiment.name` must not be empty".into());
    }
    if runs.is_empty() {
        return Err("the grid, points and exclusions leave no runs".into());
    }
    if file.scheduler.runs_per_device == 0 {
        return Err("`scheduler.runs_per_device` must be at least 1".into());
    }
    Ok(runs)
}

fn random_points(random: &RandomSearch) -> Result<Vec<Table>, String> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(random.seed);
    let mut out = Vec::new();
    for _ in 0..random.samples {
        let mut t = Table::new();
        for (key, dist) in &random.space {
            let v = match dist {
                Distribution::Uniform([lo, hi]) if lo < hi => toml::Value::Float(rng.gen_range(*lo..*hi)),
                Distribution::LogUniform([lo, hi]) if 0.0 < *lo && lo < hi => {
                    toml::Value::Float(rng.gen_range(lo.ln()..hi.ln()).exp())
                }
                Distribution::IntUniform([lo, hi]) if lo <= hi => {
                    toml::Value::Integer(rng.gen_range(*lo..=*hi))
                }
                Distribution::Choice(values) if !values.is_empty() => {
                    values[rng.gen_range(0..values.len())].clone()
                }
                other => return Err(format!("random.space.{key}: empty or reversed range {other:?}")),
            };
            t.insert(key.clone(), v);
        }
        out.push(t);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run ids index existing registries: changing what is hashed would make every recorded run
    /// look new and train again. This pins the id of the default config.
    #[test]
    fn run_ids_stay_stable_across_versions() {
        let id = run_id("quickstart", &RunConfig::default());
        assert_eq!(id, "41bffb4a3ce8");
        let bf16 = RunConfig {
            precision: Precision::Bf16,
            ..RunConfig::default()
        };
        assert_ne!(run_id("quickstart", &bf16), id);
    }
}
