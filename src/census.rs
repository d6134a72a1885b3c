//! What a study's search space holds, as far as validity goes: which configurations it can
//! propose are invalid (valid axis by axis but not as a whole), and the run ids of the valid ones
//! of a small space. The coordinator, the estimate and `pixelx run --dry-run` all count trials by
//! it, so it lives below them.

use crate::config::{run_id, Experiment, RunConfig};
use crate::search::{self, Params};

/// Why a recorded configuration (a run's parameters as the registry stores them) is invalid;
/// None for a valid one. An invalid trial was never trained, so it is never retried either.
pub fn invalid_reason(params: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    let config: RunConfig = serde_json::from_value(serde_json::Value::Object(params.clone())).ok()?;
    config.validate().err().map(|e| e.to_string())
}

/// Whether a run's recorded configuration is invalid (see [`invalid_reason`]).
pub fn is_invalid(config: &RunConfig) -> bool {
    config.validate().is_err()
}

/// Spaces of at most this many configurations are enumerated by [`census`]; larger or
/// continuous ones are sampled.
pub const CENSUS_LIMIT: usize = 10_000;
/// Points [`census`] draws from a space it does not enumerate.
pub const CENSUS_SAMPLES: usize = 4096;

/// What a study's search space holds, as far as validity goes: every configuration of a small
/// discrete space, else a sample of its prior.
#[derive(Debug, Clone)]
pub struct Census {
    /// Configurations looked at.
    pub examined: usize,
    /// Whether they are all of the space's (else a sample).
    pub enumerated: bool,
    /// How many of them are invalid, and the first with why.
    pub invalid: usize,
    pub example: Option<(String, String)>,
    /// The run ids of the valid configurations, when the space was enumerated.
    pub valid_ids: Option<Vec<String>>,
}

impl Census {
    /// The dry run's warning when the space can propose invalid configurations.
    pub fn warning(&self) -> Option<String> {
        let (params, why) = self.example.as_ref()?;
        let of = if self.enumerated {
            format!(
                "{} of the {} configurations of the search space",
                self.invalid, self.examined
            )
        } else {
            format!(
                "{} of {} configurations sampled from the search space",
                self.invalid, self.examined
            )
        };
        let verb = if self.invalid == 1 { "is" } else { "are" };
        Some(format!(
            "warning: {of} {verb} invalid, e.g. {params}: {why}. A trial proposing one is recorded \
             as failed without training and counts toward `search.trials`"
        ))
    }
}

/// Checks the configurations `experiment`'s search space can propose (see [`Census`]); a space
/// too large to enumerate is sampled if `sample`, else None.
pub fn census(experiment: &Experiment, sample: bool) -> Option<Census> {
    let space = &experiment.search.space;
    let (points, enumerated) = match search::enumerate(space, CENSUS_LIMIT) {
        Some(all) => (all, true),
        None if !sample => return None,
        None => {
            use rand::SeedableRng;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(experiment.search.seed);
            let sample = (0..CENSUS_SAMPLES)
                .map(|_| search::sample_params(space, &mut rng))
                .collect();
            (sample, false)
        }
    };
    let name = &experiment.info.name;
    let mut census = Census {
        examined: points.len(),
        enumerated,
        invalid: 0,
        example: None,
        valid_ids: enumerated.then(Vec::new),
    };
    for p in &points {
        let checked = experiment
            .trial_config_unchecked(p)
            .and_then(|c| c.validate().map(|()| c).map_err(|e| e.to_string()));
        match checked {
            Ok(config) => {
                if let Some(ids) = census.valid_ids.as_mut() {
                    ids.push(run_id(name, &config));
                }
            }
            Err(why) => {
                census.invalid += 1;
                census.example.get_or_insert_with(|| (describe_params(p), why));
            }
        }
    }
    Some(census)
}

/// `data_channels=3, hidden_fmaps=8`: a trial's parameters, for messages.
pub fn describe_params(params: &Params) -> String {
    params
        .iter()
        .map(|(k, v)| match v {
            toml::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
