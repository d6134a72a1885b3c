//! Experiment files: a grid (plus explicit points and random samples) of run configurations, or
//! an adaptive search over a space, with the settings of the sweep.
//!
//! Values are layered with figment: built-in defaults < the file < `PIXELX_<PARAM>` environment
//! variables < `--set key=value`. Every run is validated before anything starts; errors name the
//! file, the key and where its value came from, give line:column for TOML syntax, and suggest
//! the nearest valid key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::expand::{expand, overlay, Table};
use super::sources::{env_run_values, humanize, parse_value, suggest, Source, Sources};
use super::sweep::{PrunerSettings, SchedulerSettings, SearchSettings, SlurmSettings};
use super::RunConfig;
use crate::data::DatasetKind;
use crate::precision::Precision;
use crate::search::Space;

/// Run parameters, i.e. the keys of `[defaults]`, grid axes, points, exclusions and search
/// spaces: `RunConfig`'s fields in order (a test pins the two together).
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

const SECTIONS: [&str; 9] = [
    "experiment",
    "defaults",
    "grid",
    "points",
    "exclude",
    "random",
    "search",
    "pruner",
    "scheduler",
];
const EXPERIMENT_KEYS: [&str; 4] = ["name", "description", "dataset", "max_runs"];
const SCHEDULER_KEYS: [&str; 5] = ["devices", "runs_per_device", "retries", "backend", "slurm"];
const SLURM_KEYS: [&str; 8] = [
    "partition",
    "time",
    "cpus_per_run",
    "gpus_per_run",
    "mem",
    "max_jobs",
    "extra",
    "signal_grace",
];
const RANDOM_KEYS: [&str; 3] = ["samples", "seed", "space"];
const SEARCH_KEYS: [&str; 7] = [
    "method",
    "trials",
    "seed",
    "parallel",
    "startup_trials",
    "multivariate",
    "space",
];
const PRUNER_KEYS: [&str; 6] = [
    "kind",
    "metric",
    "grace_epochs",
    "reduction_factor",
    "warmup_epochs",
    "min_trials",
];

/// Sweeps larger than this are refused unless `experiment.max_runs` says otherwise: a typo in a
/// grid should not queue a million runs.
pub const DEFAULT_MAX_RUNS: usize = 10_000;

/// A problem with an experiment file, located as precisely as possible.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ExperimentError {
    pub file: String,
    pub message: String,
}

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

/// One run of an experiment: its identity and configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    pub id: String,
    pub config: RunConfig,
}

/// A grid run left out because an earlier run of the sweep is the same model written another
/// way (see [`RunConfig::effective`]).
#[derive(Debug, Clone)]
pub struct Equivalent {
    pub id: String,
    pub config: RunConfig,
    /// The run trained in its place.
    pub same_as: String,
    /// How the two configurations come to the same model.
    pub why: String,
}

impl Equivalent {
    /// The note `pixelx run` prints about it.
    pub fn note(&self) -> String {
        format!(
            "note: run {} is the same model as run {} ({}); it is trained once, as {}",
            self.id, self.same_as, self.why, self.same_as
        )
    }
}

/// Splits off the runs that are the same model as an earlier one: each effective configuration
/// is trained once, under the id of its first run (ids stay those of the configs as written).
fn drop_equivalent(name: &str, runs: Vec<RunSpec>) -> (Vec<RunSpec>, Vec<Equivalent>) {
    let mut kept: Vec<RunSpec> = Vec::new();
    let mut first: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut dropped = Vec::new();
    for run in runs {
        let key = run_id(name, &run.config.effective());
        match first.get(&key) {
            Some(&i) => dropped.push(Equivalent {
                why: kept[i].config.same_model_because(&run.config),
                same_as: kept[i].id.clone(),
                id: run.id,
                config: run.config,
            }),
            None => {
                first.insert(key, kept.len());
                kept.push(run);
            }
        }
    }
    (kept, dropped)
}

/// An expanded, validated experiment.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub file: PathBuf,
    pub info: ExperimentInfo,
    pub scheduler: SchedulerSettings,
    pub search: SearchSettings,
    pub pruner: PrunerSettings,
    /// `[defaults]` over the built-in defaults: what every run starts from.
    pub base: RunConfig,
    /// Every run, for grid search; empty for adaptive search, whose runs are proposed while the
    /// sweep runs (see `search::study`).
    pub runs: Vec<RunSpec>,
    /// Grid runs left out of `runs` as the same model as one in it.
    pub equivalent: Vec<Equivalent>,
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

fn check_keys(table: &toml::Table, valid: &[&str], at: &str) -> Result<(), String> {
    for key in table.keys() {
        if !valid.contains(&key.as_str()) {
            return Err(format!("unknown key `{at}{key}`{}", suggest(key, valid)));
        }
    }
    Ok(())
}

/// The keys valid directly under a dotted table path, or None when the path holds values.
fn keys_under(path: &str) -> Option<&'static [&'static str]> {
    Some(match path {
        "" => &SECTIONS,
        "experiment" => &EXPERIMENT_KEYS,
        "defaults" | "grid" | "random.space" | "search.space" => &RUN_KEYS,
        "scheduler" => &SCHEDULER_KEYS,
        "scheduler.slurm" => &SLURM_KEYS,
        "random" => &RANDOM_KEYS,
        "search" => &SEARCH_KEYS,
        "pruner" => &PRUNER_KEYS,
        _ if is_space_axis(path) => &AXIS_KEYS,
        _ => return None,
    })
}

/// `search.space.<name>` or `random.space.<name>`: one axis of a search space.
fn is_space_axis(path: &str) -> bool {
    ["search.space.", "random.space."].iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|name| !name.is_empty() && !name.contains('.'))
    })
}

/// Puts `value` at the dotted `path` of `doc`, replacing what was there (creating tables on the
/// way). A table given to `--set` replaces the file's table instead of merging into it, so that
/// `--set 'search.space.x={ choice = [8] }'` reshapes an axis written as `{ int = [...] }`.
fn replace_at(doc: &mut toml::Table, path: &str, value: toml::Value) {
    let (parents, leaf) = path.rsplit_once('.').unwrap_or(("", path));
    let mut table = doc;
    for part in parents.split('.').filter(|p| !p.is_empty()) {
        let entry = table
            .entry(part)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        table = entry.as_table_mut().expect("made a table just above");
    }
    table.insert(leaf.to_owned(), value);
}

/// Checks the names used in the file (so typos are caught with a suggestion).
fn check_structure(doc: &toml::Table) -> Result<(), String> {
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
    if !doc.contains_key("experiment") {
        return Err("missing `[experiment]` table with at least `name`".into());
    }
    walk(doc, "")
}

/// The keys an axis of a search space may have.
const AXIS_KEYS: [&str; 7] = [
    "uniform",
    "log_uniform",
    "int",
    "int_uniform",
    "choice",
    "step",
    "log",
];

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

/// Checks the path of a `--set` key against the file's structure.
fn check_override_path(path: &str) -> Result<(), String> {
    let (parent, leaf) = path.rsplit_once('.').unwrap_or(("", path));
    match keys_under(parent) {
        Some(valid) if !valid.contains(&leaf) => {
            Err(format!("--set: unknown key `{path}`{}", suggest(leaf, valid)))
        }
        Some(_) => Ok(()),
        None => Err(format!("--set: `{parent}` holds no keys")),
    }
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
        .ok_or_else(|| format!("--set {s}: expected KEY=VALUE"))?;
    let key = key.trim();
    let path = if RUN_KEYS.contains(&key) {
        format!("defaults.{key}")
    } else if key.contains('.') {
        check_override_path(key)?;
        key.to_owned()
    } else if keys_under("").is_some_and(|s| s.contains(&key)) {
        key.to_owned()
    } else {
        return Err(format!("--set: unknown key `{key}`{}", suggest(key, &RUN_KEYS)));
    };
    check_integer_range(key, value)?;
    Ok((path, parse_value(value)))
}

/// TOML integers are 64-bit: a longer one would otherwise be read as a string and reported as
/// "expected an integer, got the string".
fn check_integer_range(key: &str, value: &str) -> Result<(), String> {
    let text = value.trim();
    // TOML allows `1_000`; Rust's parser does not.
    let plain = text.replace('_', "");
    let digits = plain.strip_prefix(['-', '+']).unwrap_or(&plain);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || plain.parse::<i64>().is_ok() {
        return Ok(());
    }
    let bound = if text.starts_with('-') {
        format!("too small (at least {})", i64::MIN)
    } else {
        format!("too large (at most {})", i64::MAX)
    };
    Err(format!("--set {key}: {text} is {bound}"))
}

/// Names pixelx records runs under itself, with what they hold: a file of the same name would
/// silently share their experiment.
const RESERVED_NAMES: [(&str, &str); 2] = [
    ("adhoc", "runs started with `pixelx train`"),
    ("imported", "weights read with `pixelx import`"),
];

/// Characters that print as nothing or reorder the text around them (zero-width spaces and
/// joiners, bidirectional marks, embeddings, overrides and isolates, the byte-order mark): a
/// name holding one reads as another name.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}'
    )
}

/// Rejects names a terminal or a log would show as something else, names that are a path's dot
/// segment (a link to `/experiments/..` is folded to `/` by every browser), and reserved ones.
fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("`experiment.name` must not be empty".into());
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!(
            "`experiment.name` contains the control character {:?}; use printable characters",
            c
        ));
    }
    if let Some(c) = name.chars().find(|c| is_invisible(*c)) {
        return Err(format!(
            "`experiment.name` contains U+{:04X}, an invisible or text-direction character; use \
             printable characters",
            c as u32
        ));
    }
    if name == "." || name == ".." {
        return Err(format!(
            "`experiment.name` `{name}` is a path segment, which links and paths cannot name; \
             choose another name"
        ));
    }
    if let Some((_, holds)) = RESERVED_NAMES.iter().find(|(n, _)| *n == name) {
        return Err(format!(
            "`experiment.name`: `{name}` is reserved for {holds}; choose another name"
        ));
    }
    Ok(())
}

impl Experiment {
    /// Reads, layers, expands and validates an experiment file.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, ExperimentError> {
        let name = path.display().to_string();
        let err = |message: String| ExperimentError {
            file: name.clone(),
            message,
        };
        // A FIFO or device would block or never end, a huge file would exhaust memory: the
        // helper refuses them before reading.
        let text = crate::fsio::read_text_file(path, "experiment file")
            .map_err(|e| err(format!("cannot read: {}", e.root_cause())))?;
        let mut doc: toml::Table = toml::from_str(&text).map_err(|e| {
            let at = e.span().map(|s| line_col(&text, s.start));
            let (line, col) = at.unwrap_or((0, 0));
            err(format!("{line}:{col}: TOML syntax error: {}", e.message()))
        })?;
        check_structure(&doc).map_err(err)?;
        let overrides: Vec<(String, toml::Value, &String)> = overrides
            .iter()
            .map(|o| parse_override(o).map(|(key, value)| (key, value, o)))
            .collect::<Result<_, _>>()
            .map_err(err)?;
        let mut text = text;
        // Tables (and arrays of them, `points=[{...}]`) go into the document, so that their keys
        // are checked, with suggestions, as the file's are.
        let holds_tables = |value: &toml::Value| {
            value.is_table()
                || value
                    .as_array()
                    .is_some_and(|a| a.iter().any(toml::Value::is_table))
        };
        if overrides.iter().any(|(_, value, _)| holds_tables(value)) {
            for (key, value, _) in overrides.iter().filter(|(_, value, _)| holds_tables(value)) {
                replace_at(&mut doc, key, value.clone());
            }
            check_structure(&doc).map_err(err)?;
            text = toml::to_string(&doc).map_err(|e| err(format!("cannot apply --set: {e}")))?;
        }

        let mut sources = Sources::new(Some(name.clone()));
        let mut figment = Figment::from(Toml::string(&text));
        for (key, value, var) in env_run_values() {
            let path = format!("defaults.{key}");
            figment = figment.merge(Serialized::global(&path, value));
            sources.set(&path, Source::Env(var));
        }
        // Tables replaced the file's above; merged again here so that they win over PIXELX_*.
        for (key, value, o) in overrides {
            figment = figment.merge(Serialized::global(&key, value));
            sources.set(&key, Source::Set(o.clone()));
        }
        let file: ExperimentFile = figment.extract().map_err(|e| {
            let e = e.into_iter().next().map(|e| {
                let path = e.path.join(".");
                let kind = humanize(&e.kind.to_string());
                if path.is_empty() {
                    kind
                } else {
                    format!("`{path}`{}: {kind}", sources.of(&path).note())
                }
            });
            err(e.unwrap_or_else(|| "invalid experiment file".into()))
        })?;
        Self::from_file(path, file, &sources).map_err(err)
    }

    fn from_file(path: &Path, file: ExperimentFile, sources: &Sources) -> Result<Self, String> {
        check_name(&file.experiment.name)?;
        if file.scheduler.runs_per_device == 0 {
            return Err("`scheduler.runs_per_device` must be at least 1".into());
        }
        check_slurm(&file.scheduler.slurm)?;
        let mut base = RunConfig::default();
        if let Some(d) = file.experiment.dataset {
            base.dataset = d;
        }
        let base = overlay(&base, &file.defaults, "defaults", "defaults", sources)?;
        let search = file.search.clone().unwrap_or_default();
        let runs = if search.method.is_adaptive() {
            check_adaptive(&file, &search, &base, sources)?;
            Vec::new()
        } else {
            if file
                .search
                .as_ref()
                .is_some_and(|s| !s.space.is_empty() || s.trials.is_some())
            {
                return Err(
                    "`search.method = \"grid\"` takes its runs from [grid], [[points]] and [random]; \
                     `search.space` and `search.trials` are for \"random\" or \"tpe\""
                        .into(),
                );
            }
            expand(&file, &base, sources)?
        };
        let (runs, equivalent) = drop_equivalent(&file.experiment.name, runs);
        let max_epochs = runs
            .iter()
            .map(|r| r.config.epochs)
            .chain(std::iter::once(base.epochs))
            .max()
            .unwrap_or(base.epochs);
        let planned = if search.method.is_adaptive() {
            search.trials.unwrap_or(0)
        } else {
            runs.len()
        };
        if file.pruner.kind == super::PrunerKind::Median && file.pruner.min_trials > planned {
            return Err(format!(
                "`pruner.min_trials` = {} is more than the {planned} run(s) of the sweep: the median rule could never stop a run",
                file.pruner.min_trials
            ));
        }
        file.pruner.validate(max_epochs).map_err(|e| {
            // Say where the runs' epochs came from when it was not the file.
            format!(
                "{e}{}",
                sources
                    .of("defaults.epochs")
                    .note()
                    .replace(" (from", " (epochs from")
            )
        })?;
        Ok(Self {
            file: path.to_owned(),
            info: file.experiment,
            scheduler: file.scheduler,
            search,
            pruner: file.pruner,
            base,
            runs,
            equivalent,
        })
    }

    /// The configuration of an adaptive trial: the base config with the trial's parameters.
    pub fn trial_config(&self, params: &Table) -> Result<RunConfig, String> {
        let config = self.trial_config_unchecked(params)?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    /// The configuration of a trial with `params`, not validated: a proposal whose values are
    /// each in the space but not valid together (`hidden_fmaps` not a multiple of
    /// `data_channels`) is still a definite configuration, recorded as a failed trial under the
    /// id it hashes to. Err only when a value does not fit its parameter at all.
    pub fn trial_config_unchecked(&self, params: &Table) -> Result<RunConfig, String> {
        overlay(
            &self.base,
            params,
            "search.space",
            "search.space",
            &Sources::default(),
        )
    }

    /// Parameters whose value differs between runs, in `RUN_KEYS` order (for adaptive search,
    /// the axes of its space).
    pub fn varying_keys(&self) -> Vec<&'static str> {
        if self.search.method.is_adaptive() {
            return RUN_KEYS
                .iter()
                .copied()
                .filter(|k| self.search.space.contains_key(*k))
                .collect();
        }
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

    /// How many runs the sweep trains at most.
    pub fn planned_runs(&self) -> usize {
        if self.search.method.is_adaptive() {
            self.search.trials.unwrap_or(0)
        } else {
            self.runs.len()
        }
    }
}

fn check_slurm(s: &SlurmSettings) -> Result<(), String> {
    if let Some(t) = &s.time {
        if !super::sweep::valid_slurm_time(t) {
            return Err(format!(
                "`scheduler.slurm.time`: `{t}` is not a Slurm time limit; use minutes (`90`), \
                 `HH:MM:SS` or `D-HH:MM:SS`"
            ));
        }
    }
    if s.max_jobs == 0 {
        return Err("`scheduler.slurm.max_jobs` must be at least 1".into());
    }
    if s.cpus_per_run == Some(0) {
        return Err("`scheduler.slurm.cpus_per_run` must be at least 1".into());
    }
    if let Some(m) = &s.mem {
        let digits = m.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || m.len() - digits.len() > 1 {
            return Err(format!(
                "`scheduler.slurm.mem`: `{m}` is not a memory size; use a number with an optional unit, e.g. \"32G\" or \"4000M\""
            ));
        }
    }
    // Slurm stores the signal's lead time in 16 bits.
    if s.signal_grace > 65_535 {
        return Err(format!(
            "`scheduler.slurm.signal_grace` must be at most 65535 seconds, got {}",
            s.signal_grace
        ));
    }
    for (key, value) in [("partition", &s.partition), ("time", &s.time)] {
        if value.as_ref().is_some_and(|v| v.contains(char::is_whitespace)) {
            return Err(format!(
                "`scheduler.slurm.{key}` must not contain spaces or newlines"
            ));
        }
    }
    for line in &s.extra {
        if line.contains('\n') || !line.trim_start().starts_with('-') {
            return Err(format!(
                "`scheduler.slurm.extra`: `{line}` is not one sbatch option (e.g. \"--account=vision\")"
            ));
        }
    }
    Ok(())
}

/// Checks an adaptive `[search]`: its budget and space, and that the space's corners make
/// valid runs (so a bad bound fails now, not after hours of sweeping).
fn check_adaptive(
    file: &ExperimentFile,
    search: &SearchSettings,
    base: &RunConfig,
    sources: &Sources,
) -> Result<(), String> {
    let method = search.method.as_str();
    if !file.grid.is_empty() || !file.points.is_empty() || file.random.is_some() {
        return Err(format!(
            "`search.method = \"{method}\"` proposes the runs itself; move [grid], [[points]] and \
             [random] axes into `[search.space]`"
        ));
    }
    match search.trials {
        None => {
            return Err(format!(
                "`search.trials`: the budget of runs is required for \"{method}\""
            ))
        }
        Some(0) => return Err("`search.trials` must be at least 1".into()),
        Some(n) if n > file.experiment.max_runs => {
            return Err(format!(
                "`search.trials` = {n} is more than `experiment.max_runs` = {}; raise it \
                 (`--set experiment.max_runs={n}`) if you mean it",
                file.experiment.max_runs
            ))
        }
        Some(_) => {}
    }
    if search.parallel == Some(0) {
        return Err("`search.parallel` must be at least 1".into());
    }
    if search.space.is_empty() {
        return Err(format!(
            "`search.space` is empty: \"{method}\" needs at least one axis"
        ));
    }
    for (key, dist) in &search.space {
        dist.validate()
            .map_err(|e| format!("`search.space.{key}`: {e}"))?;
    }
    // Every axis at its first value, then each value of each axis in turn with the others held
    // there: a value that makes an invalid run is found now, not hours into the study.
    let reference: Table = search
        .space
        .iter()
        .map(|(k, d)| (k.clone(), axis_values(d)[0].clone()))
        .collect();
    let check = |table: &Table, axis: &str| -> Result<(), String> {
        let config = overlay(base, table, "search.space", "search.space", sources)?;
        config.validate().map_err(|e| {
            if search.space.contains_key(&e.key) {
                let hint = if e.key == axis {
                    ""
                } else {
                    " (with the other axes at their first value)"
                };
                format!("`search.space.{}`{hint}: {e}", e.key)
            } else {
                // The space is fine; the value comes from the defaults (or their overrides).
                let origin = sources.of(&format!("defaults.{}", e.key));
                e.from_source(origin).to_string()
            }
        })
    };
    check(&reference, "")?;
    for (key, dist) in &search.space {
        for value in axis_values(dist) {
            let mut table = reference.clone();
            table.insert(key.clone(), value);
            check(&table, key)?;
        }
    }
    Ok(())
}

/// The values checked for an axis: both ends of a float range, every value of an integer range
/// (or its ends, past ten thousand values) and every choice.
fn axis_values(d: &crate::search::Distribution) -> Vec<toml::Value> {
    use crate::search::Distribution;
    match d {
        Distribution::Float { low, high, .. } => vec![toml::Value::Float(*low), toml::Value::Float(*high)],
        Distribution::Int { low, high, step, .. } => {
            let step = (*step).max(1);
            if (*high as i128 - *low as i128) / (step as i128) < 10_000 {
                (*low..=*high)
                    .step_by(step as usize)
                    .map(toml::Value::Integer)
                    .collect()
            } else {
                vec![toml::Value::Integer(*low), toml::Value::Integer(*high)]
            }
        }
        Distribution::Choice(values) => values.clone(),
    }
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

    /// `RUN_KEYS` is how files, `--set` and reports name a run's parameters: it must list
    /// exactly `RunConfig`'s fields, in their order.
    #[test]
    fn run_keys_are_the_run_config_fields() {
        let value = serde_json::to_value(RunConfig::default()).unwrap();
        let fields: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(fields, RUN_KEYS);
    }

    #[test]
    fn override_paths_are_checked_with_suggestions() {
        assert_eq!(parse_override("epochs=3").unwrap().0, "defaults.epochs");
        assert!(parse_override("learning_rat=3")
            .unwrap_err()
            .contains("did you mean `learning_rate`"));
        assert!(parse_override("scheduler.runs_per_devic=2")
            .unwrap_err()
            .contains("did you mean `runs_per_device`"));
        assert!(parse_override("scheduler.slurm.partition=gpu").is_ok());
        assert!(parse_override("grid.seed=[1, 2]").is_ok());
        assert!(parse_override("grid.sed=[1, 2]").unwrap_err().contains("`seed`"));
    }

    #[test]
    fn set_says_an_integer_is_out_of_range_and_keeps_the_ones_toml_reads() {
        let big = parse_override("search.trials=18446744073709551615").unwrap_err();
        assert!(big.contains("too large"), "{big}");
        let small = parse_override("seed=-9223372036854775809").unwrap_err();
        assert!(small.contains("too small"), "{small}");
        for ok in [
            "seed=1_000",
            "seed=+5",
            "seed=-9223372036854775808",
            "device=cpu",
            "seed=1e3",
        ] {
            assert!(parse_override(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn names_that_read_as_other_names_or_are_reserved_are_refused() {
        for bad in [
            "a\u{202E}b",
            "a\u{200B}b",
            "\u{FEFF}x",
            "..",
            ".",
            "adhoc",
            "imported",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["...", "a.b", "café ☕", "Adhoc-2", "mnist_sweep"] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }
}
