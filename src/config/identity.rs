//! Run identity: a run is named by a hash of its experiment and configuration, so that running
//! a file again finds the runs it already has, and a grid point that is the same model as an
//! earlier one is trained once.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::run_config::RunConfig;
use crate::precision::Precision;

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
pub(super) fn drop_equivalent(name: &str, runs: Vec<RunSpec>) -> (Vec<RunSpec>, Vec<Equivalent>) {
    let mut kept: Vec<RunSpec> = Vec::new();
    let mut first: HashMap<String, usize> = HashMap::new();
    let mut dropped = Vec::new();
    for run in runs {
        // `fp32` and `auto` hash alike (see [`identity`]) but are not the same model where `auto`
        // means bf16: the precision as written is part of the key.
        let key = format!(
            "{} {}",
            run_id(name, &run.config.effective()),
            run.config.precision.as_str()
        );
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
/// thus keep their run ids (a test pins one); a bf16 run gets an id of its own. `precision` is
/// left out both at `fp32` (the default it had) and at `auto` (the default it has now), so a
/// file that never names it keeps every id, and one that names `fp32` keeps its ids too. The
/// price: `fp32` and `auto` of an otherwise equal config share an id, which
/// [`precision_conflict`] refuses.
fn identity(config: &RunConfig) -> serde_json::Value {
    let mut value = serde_json::to_value(config).unwrap_or_default();
    if let Some(fields) = value.as_object_mut() {
        if matches!(config.precision, Precision::Fp32 | Precision::Auto) {
            fields.shift_remove("precision");
        }
    }
    value
}

/// Why two configurations with one run id can't both be runs of a sweep, when they differ: the
/// only way that happens is `fp32` against `auto` (see [`identity`]).
pub(super) fn precision_conflict(a: &RunConfig, b: &RunConfig) -> Option<String> {
    (a != b).then(|| {
        format!(
            "`precision` = \"{}\" and \"{}\" give one run the same id (an id leaves out fp32 and auto \
             alike, so that files from before `auto` keep their ids); list one of them, or bf16 \
             to compare bf16 with fp32",
            a.precision.as_str(),
            b.precision.as_str()
        )
    })
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

    /// `auto` became the default after registries were made with `fp32` as the default: both
    /// keep the ids those registries have (this one was recorded by a version whose default
    /// precision was fp32, for a config that names every other value).
    #[test]
    fn auto_and_fp32_keep_the_ids_from_before_auto() {
        let auto = RunConfig::default();
        assert_eq!(auto.precision, Precision::Auto);
        let fp32 = RunConfig {
            precision: Precision::Fp32,
            ..RunConfig::default()
        };
        assert_eq!(run_id("quickstart", &auto), "41bffb4a3ce8");
        assert_eq!(run_id("quickstart", &fp32), "41bffb4a3ce8");
        assert!(precision_conflict(&auto, &fp32)
            .unwrap()
            .contains("\"auto\" and \"fp32\""));
        assert!(precision_conflict(&auto, &auto.clone()).is_none());
    }
}
