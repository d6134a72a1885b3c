//! What reads of the registry return: a run's summary and its parts, metric rows, filters.

use anyhow::Result;
use serde::Serialize;

use super::RunStatus;

/// One recorded metric value.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    pub name: String,
    pub step: i64,
    /// Set for per-epoch metrics (`test_bpd8`...), whose step is the epoch.
    pub epoch: Option<i64>,
    pub value: f64,
}

/// Which runs a report covers.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub experiment: Option<String>,
    /// `key=value` conditions on run parameters; numbers compare numerically.
    pub conditions: Vec<(String, String)>,
    pub status: Option<super::RunStatus>,
    /// One run only (a full id); its metrics are then read alone, not every run's.
    pub run_id: Option<String>,
}

impl RunFilter {
    pub fn run(id: &str) -> Self {
        Self {
            run_id: Some(id.to_owned()),
            ..Self::default()
        }
    }
}

/// The best epoch of a run by test `bpd8` (ties broken by `bpd`).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct BestEpoch {
    pub epoch: u32,
    pub bpd8: f64,
    pub bpd: f64,
    pub nll: f64,
}

/// Per-epoch values of one run, for curves.
///
/// Artefact paths in a summary (`checkpoint`, `samples`) are relative to the run's folder,
/// `<runs dir>/<id>/`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Curves {
    pub epochs: Vec<u32>,
    pub test_bpd8: Vec<f64>,
    pub test_bpd: Vec<f64>,
    pub train_loss: Vec<f64>,
}

/// Where a running run stands, from its journal's latest `steps` line.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Progress {
    /// The epoch being trained, 1-based.
    pub epoch: u32,
    pub step_in_epoch: i64,
    pub steps_per_epoch: i64,
    pub images_per_sec: Option<f64>,
    /// When this was recorded.
    pub at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub id: String,
    pub experiment: String,
    pub status: RunStatus,
    /// How the experiment chooses its runs (grid, random, tpe).
    pub method: String,
    /// The trial number within an adaptive search.
    pub trial: Option<i64>,
    pub device: Option<String>,
    /// The precision it trained in (`auto` resolved for its device), once a worker started it;
    /// `params.precision` is what its config asked.
    pub precision_used: Option<String>,
    pub params: serde_json::Map<String, serde_json::Value>,
    pub best: Option<BestEpoch>,
    pub images_per_sec: Option<f64>,
    pub wall_seconds: Option<f64>,
    pub checkpoint: Option<String>,
    pub samples: Option<String>,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Running runs: the epoch and step being trained.
    pub progress: Option<Progress>,
    /// Recorded as running on this host, but its process is gone.
    pub process_gone: bool,
    /// The Slurm job training it, if any.
    pub job: Option<String>,
    /// Bytes of the run's journal ingested (to tell whether it holds newer results).
    #[serde(skip)]
    pub journal_offset: u64,
    #[serde(skip)]
    pub curves: Curves,
}

/// A path the registry stored for a run's artefact, relative to the run's folder. Older
/// registries stored the path the run was created under (`runs/<id>/checkpoints/...`, possibly
/// absolute); the part after the run's id is what locates it now.
pub fn run_relative(stored: &str, id: &str) -> String {
    let marker = format!("{id}/");
    match stored.rfind(&marker) {
        Some(i) if i == 0 || stored[..i].ends_with('/') => stored[i + marker.len()..].to_owned(),
        _ => stored.to_owned(),
    }
}

pub(super) fn param_matches(
    params: &serde_json::Map<String, serde_json::Value>,
    key: &str,
    want: &str,
) -> bool {
    let Some(v) = params.get(key) else { return false };
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match (text.parse::<f64>(), want.parse::<f64>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => text == want,
    }
}

/// A run's parameters from its stored config. Configs recorded before a parameter existed are
/// read through `RunConfig`, which fills in its default, so every run shows every parameter.
pub(super) fn stored_params(json: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
    ParamsParser::default().params(json)
}

/// Reads stored configurations as [`stored_params`] does, faster over many runs: a configuration
/// that has exactly the keys `RunConfig` writes now (every run this version recorded) is read as
/// it is, without the round trip through `RunConfig` that fills in missing parameters: half the
/// cost of reading 100,000 runs.
#[derive(Default)]
pub(super) struct ParamsParser {
    current_keys: Option<Vec<String>>,
}

impl ParamsParser {
    pub(super) fn params(&mut self, json: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
        if self.current_keys.is_none() {
            let defaults = serde_json::to_value(crate::config::RunConfig::default())?;
            let keys = defaults.as_object().map(|m| m.keys().cloned().collect());
            self.current_keys = Some(keys.unwrap_or_default());
        }
        let current = self.current_keys.as_deref().unwrap_or_default();
        if let Ok(map) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json) {
            // Compared in order (no lookup per key): a map keeps its keys in one order whatever
            // the order they were written in, so the current keys read back in this order.
            if map.len() == current.len() && map.keys().zip(current).all(|(a, b)| a == b) {
                return Ok(map);
            }
        }
        let value = match serde_json::from_str::<crate::config::RunConfig>(json) {
            Ok(config) => serde_json::to_value(config)?,
            Err(_) => serde_json::from_str(json)?,
        };
        Ok(match value {
            serde_json::Value::Object(m) => m,
            _ => Default::default(),
        })
    }
}
