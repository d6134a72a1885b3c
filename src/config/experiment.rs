//! Experiment files: a grid (plus explicit points and random samples) of run configurations, or
//! an adaptive search over a space, with the settings of the sweep.
//!
//! Values are layered with figment: built-in defaults < the file < `PIXELX_<PARAM>` environment
//! variables < `--set key=value` ([`super::overrides`]). Every run is validated before anything
//! starts; errors name the file, the key and where its value came from, give line:column for
//! TOML syntax, and suggest the nearest valid key ([`super::schema`]).

use std::path::{Path, PathBuf};

use super::checks::{check_adaptive, check_grid_search, check_name, check_pruner, check_slurm};
use super::expand::{expand, overlay};
use super::identity::{drop_equivalent, Equivalent, RunSpec};
use super::keys::RUN_KEYS;
use super::overrides::{apply_tables, layer, parse_all};
use super::run_config::RunConfig;
use super::schema::{check_structure, ExperimentFile, ExperimentInfo, Table};
use super::sources::Sources;
use super::sweep::{PrunerSettings, RunsPerDevice, SchedulerSettings, SearchSettings};

/// A problem with an experiment file, located as precisely as possible.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ExperimentError {
    pub file: String,
    pub message: String,
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

/// `line:column` of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The file's text as a TOML document; a syntax error is placed at its line and column.
fn parse_toml(text: &str) -> Result<toml::Table, String> {
    toml::from_str(text).map_err(|e| {
        let at = e.span().map(|s| line_col(text, s.start));
        let (line, col) = at.unwrap_or((0, 0));
        format!("{line}:{col}: TOML syntax error: {}", e.message())
    })
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
        let mut doc = parse_toml(&text).map_err(err)?;
        check_structure(&doc).map_err(err)?;
        let overrides = parse_all(overrides).map_err(err)?;
        let text = apply_tables(&mut doc, text, &overrides).map_err(err)?;
        let (file, sources) = layer(&text, &name, overrides).map_err(err)?;
        Self::from_file(path, file, &sources).map_err(err)
    }

    fn from_file(path: &Path, file: ExperimentFile, sources: &Sources) -> Result<Self, String> {
        check_name(&file.experiment.name)?;
        if file.scheduler.runs_per_device == RunsPerDevice::Fixed(0) {
            return Err("`scheduler.runs_per_device` must be at least 1 (or \"auto\")".into());
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
            check_grid_search(&file)?;
            expand(&file, &base, sources)?
        };
        let (runs, equivalent) = drop_equivalent(&file.experiment.name, runs);
        let max_epochs = runs
            .iter()
            .map(|r| r.config.epochs)
            .chain(std::iter::once(base.epochs))
            .max()
            .unwrap_or(base.epochs);
        let experiment = Self {
            file: path.to_owned(),
            info: file.experiment,
            scheduler: file.scheduler,
            search,
            pruner: file.pruner,
            base,
            runs,
            equivalent,
        };
        check_pruner(&experiment.pruner, experiment.planned_runs(), max_epochs, sources)?;
        Ok(experiment)
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
