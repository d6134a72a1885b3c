//! The sections of an experiment file that describe the sweep rather than a run: how runs are
//! searched (`[search]`), stopped early (`[pruner]`) and scheduled (`[scheduler]`).

use serde::{Deserialize, Serialize};

use crate::search::{Pruner, Space};

/// Devices to spread runs over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Devices {
    /// `"auto"` or `"cpu"`.
    Named(String),
    /// Explicit slots, e.g. `["cuda:0", "cuda:1"]` or `["cpu", "cpu"]`.
    List(Vec<String>),
}

/// `runs_per_device`: how many runs share one device at once.
///
/// `"auto"` (the default) packs CPU runs one per core, each on one torch thread, up to the runs
/// the sweep has and what memory holds (see [`crate::slots::plan_slots`]): small models use two
/// threads badly, so two runs side by side on two cores finish about twice as fast as one after
/// the other (`just bench packing`). A GPU gets one run. A number asks for exactly that many.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RunsPerDevice {
    #[default]
    Auto,
    Fixed(usize),
}

impl Serialize for RunsPerDevice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Auto => s.serialize_str("auto"),
            Self::Fixed(n) => s.serialize_u64(*n as u64),
        }
    }
}

impl<'de> Deserialize<'de> for RunsPerDevice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match toml::Value::deserialize(d)? {
            toml::Value::String(s) if s == "auto" => Ok(Self::Auto),
            // 0 passes here so that the experiment's check names the key in its error.
            toml::Value::Integer(n) if n >= 0 => Ok(Self::Fixed(n as usize)),
            other => Err(D::Error::custom(format!(
                "expected a whole number or \"auto\", got {other}"
            ))),
        }
    }
}

/// Where workers run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Worker processes on this machine, one per device slot.
    #[default]
    Local,
    /// One Slurm job per run.
    Slurm,
}

/// `[scheduler.slurm]`: how each run's job is submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmSettings {
    /// `--partition`; the cluster's default partition when absent.
    pub partition: Option<String>,
    /// `--time` per run, in Slurm's format (`MM`, `HH:MM:SS`, `D-HH:MM`, ...); a bare number
    /// is minutes, as Slurm reads it.
    #[serde(deserialize_with = "text_or_number")]
    pub time: Option<String>,
    /// `--cpus-per-task`; the run's torch threads follow it.
    pub cpus_per_run: Option<u32>,
    /// `--gres=gpu:N`; 0 trains on CPU.
    pub gpus_per_run: u32,
    /// `--mem`, e.g. `"8G"`; a bare number is megabytes, as Slurm reads it.
    #[serde(deserialize_with = "text_or_number")]
    pub mem: Option<String>,
    /// Jobs queued or running at once.
    pub max_jobs: usize,
    /// Extra `#SBATCH` lines, passed through (e.g. `"--account=vision"`).
    pub extra: Vec<String>,
    /// Seconds before the time limit at which Slurm tells the worker to checkpoint and requeue.
    pub signal_grace: u32,
}

/// Slurm's own syntax is text, but `time = 90` and `mem = 8000` are what users write too.
fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    use serde::de::Error;
    match Option::<toml::Value>::deserialize(d)? {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s)),
        Some(toml::Value::Integer(n)) if n >= 0 => Ok(Some(n.to_string())),
        Some(other) => Err(D::Error::custom(format!(
            "expected Slurm's text (e.g. \"1:00:00\", \"8G\") or a whole number, got {other}"
        ))),
    }
}

impl Default for SlurmSettings {
    fn default() -> Self {
        Self {
            partition: None,
            time: None,
            cpus_per_run: None,
            gpus_per_run: 0,
            mem: None,
            max_jobs: 16,
            extra: Vec::new(),
            signal_grace: 120,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerSettings {
    pub devices: Devices,
    pub runs_per_device: RunsPerDevice,
    /// Extra attempts for a run whose worker died or failed for a reason that may not repeat.
    pub retries: u32,
    pub backend: BackendKind,
    pub slurm: SlurmSettings,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            devices: Devices::Named("auto".into()),
            runs_per_device: RunsPerDevice::Auto,
            retries: 0,
            backend: BackendKind::Local,
            slurm: SlurmSettings::default(),
        }
    }
}

/// How the runs of an experiment are chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMethod {
    /// Every point of `[grid]` and `[[points]]` (and `[random]` samples), decided up front.
    #[default]
    Grid,
    /// `trials` independent draws from `[search.space]`.
    Random,
    /// Tree-structured Parzen Estimator: each new run proposed from the results so far.
    Tpe,
}

impl SearchMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grid => "grid",
            Self::Random => "random",
            Self::Tpe => "tpe",
        }
    }

    /// Whether runs are proposed one by one while the sweep runs.
    pub fn is_adaptive(self) -> bool {
        self != Self::Grid
    }
}

/// `[search]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchSettings {
    pub method: SearchMethod,
    /// The budget of runs (random and TPE).
    pub trials: Option<usize>,
    pub seed: u64,
    /// Runs in flight at once; the scheduler's slots when absent.
    pub parallel: Option<usize>,
    /// TPE: trials drawn at random before the model takes over (Optuna's `n_startup_trials`);
    /// a quarter of `trials`, 2 to 10, when absent (`search::startup_for_budget`).
    pub startup_trials: Option<usize>,
    /// TPE: one joint model over all axes (Optuna's `multivariate=True`) rather than one per
    /// axis; [`SearchSettings::MULTIVARIATE_DEFAULT`] when absent.
    pub multivariate: Option<bool>,
    pub space: Space,
}

impl SearchSettings {
    /// `multivariate` when the file does not say: chosen from `just bench search` (see
    /// docs/search.md, "Univariate or multivariate").
    pub const MULTIVARIATE_DEFAULT: bool = true;

    /// Whether TPE models the axes jointly.
    pub fn multivariate(&self) -> bool {
        self.multivariate.unwrap_or(Self::MULTIVARIATE_DEFAULT)
    }
}

/// Per-epoch metrics a pruner can compare (lower is better for each).
pub const PRUNER_METRICS: [&str; 4] = ["test_bpd8", "test_bpd", "test_nll", "epoch_train_loss"];

/// Early-stopping rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrunerKind {
    #[default]
    None,
    Asha,
    Median,
}

/// `[pruner]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrunerSettings {
    pub kind: PrunerKind,
    /// The per-epoch metric compared (lower is better).
    pub metric: String,
    /// ASHA: epochs before the first rung.
    pub grace_epochs: u32,
    /// ASHA: keep the top 1/η at each rung; rungs at grace·η^k.
    pub reduction_factor: u32,
    /// Median: epochs never judged at the start of a run.
    pub warmup_epochs: u32,
    /// Median: completed runs needed before any run is stopped.
    pub min_trials: usize,
}

impl Default for PrunerSettings {
    fn default() -> Self {
        Self {
            kind: PrunerKind::None,
            metric: "test_bpd8".into(),
            grace_epochs: 1,
            reduction_factor: 3,
            warmup_epochs: 0,
            min_trials: 1,
        }
    }
}

impl PrunerSettings {
    /// The rule the study applies.
    pub fn rule(&self) -> Pruner {
        match self.kind {
            PrunerKind::None => Pruner::None,
            PrunerKind::Asha => Pruner::Asha {
                grace_epochs: self.grace_epochs,
                reduction_factor: self.reduction_factor,
            },
            PrunerKind::Median => Pruner::Median {
                warmup_epochs: self.warmup_epochs,
                min_trials: self.min_trials,
            },
        }
    }

    pub fn is_active(&self) -> bool {
        self.kind != PrunerKind::None
    }

    /// Checks the settings against the longest run of the experiment; errors name the key.
    pub fn validate(&self, max_epochs: u32) -> Result<(), String> {
        if !PRUNER_METRICS.contains(&self.metric.as_str()) {
            return Err(format!(
                "`pruner.metric`: `{}` is not a recorded per-epoch metric; use one of {}",
                self.metric,
                PRUNER_METRICS.join(", ")
            ));
        }
        let key = match self.kind {
            PrunerKind::Asha if self.grace_epochs == 0 || self.grace_epochs >= max_epochs => "grace_epochs",
            PrunerKind::Asha => "reduction_factor",
            PrunerKind::Median => "warmup_epochs",
            PrunerKind::None => return Ok(()),
        };
        self.rule()
            .validate(max_epochs)
            .map_err(|e| format!("`pruner.{key}`: {e}"))
    }
}

/// Slurm's `--time` formats: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`, or `UNLIMITED`.
pub fn valid_slurm_time(s: &str) -> bool {
    let numbers = |part: &str, max_fields: usize| {
        let fields: Vec<&str> = part.split(':').collect();
        fields.len() <= max_fields
            && fields
                .iter()
                .all(|f| !f.is_empty() && f.len() <= 6 && f.bytes().all(|b| b.is_ascii_digit()))
    };
    if s.eq_ignore_ascii_case("unlimited") || s.eq_ignore_ascii_case("infinite") {
        return true;
    }
    match s.split_once('-') {
        Some((days, rest)) => numbers(days, 1) && numbers(rest, 3),
        None => numbers(s, 3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_time_formats() {
        for ok in [
            "30",
            "30:00",
            "4:00:00",
            "1-0",
            "2-12:30",
            "1-00:00:00",
            "UNLIMITED",
        ] {
            assert!(valid_slurm_time(ok), "{ok}");
        }
        for bad in ["", "1h", "4:00:00:00", "-1", "1-", "a:b", "1.5"] {
            assert!(!valid_slurm_time(bad), "{bad}");
        }
    }

    #[test]
    fn pruner_errors_name_their_key() {
        let asha = PrunerSettings {
            kind: PrunerKind::Asha,
            grace_epochs: 5,
            ..Default::default()
        };
        assert!(asha.validate(5).unwrap_err().starts_with("`pruner.grace_epochs`"));
        assert!(asha.validate(6).is_ok());
        let metric = PrunerSettings {
            metric: "accuracy".into(),
            ..asha
        };
        assert!(metric.validate(9).unwrap_err().starts_with("`pruner.metric`"));
    }
}
