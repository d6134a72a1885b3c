//! The study: the registry's view of an experiment's runs, turned into the pure data the search
//! methods and pruners of [`crate::search`] work on. It answers the coordinator's two questions:
//! which run next (for adaptive search), and whether a run that finished an epoch goes on.

use anyhow::Result;

use crate::census::invalid_reason;
use crate::config::{run_id, Experiment, RunConfig, SearchMethod};
use crate::journal::Decision;
use crate::registry::{Registry, RunStatus, TrialRow};
use crate::search::{self, Params, Proposer, TpeSettings, Trial, TrialState};

/// A new trial of an adaptive search.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub number: usize,
    pub id: String,
    pub config: RunConfig,
    /// Why the configuration is invalid, for a proposal valid axis by axis but not as a whole:
    /// it is recorded as a failed trial and never trained.
    pub invalid: Option<String>,
}

pub struct Study<'a> {
    experiment: &'a Experiment,
    tpe: TpeSettings,
    /// Set once the space holds no configuration not tried yet: the scheduler asks for a trial
    /// on every pass, and recorded trials only grow, so the answer stays None (said once).
    exhausted: std::cell::Cell<bool>,
}

fn toml_value(v: &serde_json::Value) -> Option<toml::Value> {
    Some(match v {
        serde_json::Value::Bool(b) => toml::Value::Boolean(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64()?),
        },
        serde_json::Value::String(s) => toml::Value::String(s.clone()),
        _ => return None,
    })
}

impl<'a> Study<'a> {
    pub fn new(experiment: &'a Experiment) -> Self {
        Self {
            experiment,
            // Repeats waste the budget: a repeated configuration is the same run, already done.
            tpe: TpeSettings {
                avoid_repeats: true,
                n_startup_trials: experiment.search.startup_trials.unwrap_or_else(|| {
                    experiment.search.trials.map_or(
                        TpeSettings::default().n_startup_trials,
                        search::startup_for_budget,
                    )
                }),
                multivariate: experiment.search.multivariate(),
                ..TpeSettings::default()
            },
            exhausted: std::cell::Cell::new(false),
        }
    }

    fn metric(&self) -> &str {
        &self.experiment.pruner.metric
    }

    /// A registry row as a trial. Diverged runs and invalid configurations count as complete
    /// with the worst value (their region of the space is bad, and TPE ranks them after every
    /// complete and pruned trial); other failed runs (a crash says nothing of the region) are
    /// ignored; queued, running and interrupted ones are in flight.
    fn trial(&self, number: usize, row: &TrialRow) -> Trial {
        let params: Params = self
            .experiment
            .search
            .space
            .keys()
            .filter_map(|k| Some((k.clone(), toml_value(row.params.get(k)?)?)))
            .collect();
        let (state, value) = match row.status {
            RunStatus::Completed => (
                TrialState::Complete,
                row.values.values().copied().min_by(f64::total_cmp),
            ),
            RunStatus::Diverged => (TrialState::Complete, Some(f64::INFINITY)),
            RunStatus::Pruned => (TrialState::Pruned, None),
            RunStatus::Failed if invalid_reason(&row.params).is_some() => {
                (TrialState::Complete, Some(f64::INFINITY))
            }
            RunStatus::Failed => (TrialState::Failed, None),
            RunStatus::Queued | RunStatus::Running | RunStatus::Interrupted => (TrialState::Running, None),
        };
        Trial {
            number,
            params,
            state,
            value,
            intermediate: row.values.clone(),
        }
    }

    /// Every run of the experiment as a trial, with its run id. Trials of an adaptive search
    /// keep their recorded numbers; grid runs are numbered in creation order.
    fn trials(&self, rows: &[TrialRow]) -> Vec<(String, Trial)> {
        rows.iter()
            .enumerate()
            .map(|(i, r)| {
                let number = r.trial.map_or(i, |t| t as usize);
                (r.id.clone(), self.trial(number, r))
            })
            .collect()
    }

    /// Warns when the recorded trials came from another study than the file now describes: a
    /// space edited since (parameters outside it) or another search method. They still count
    /// toward the budget and inform the search, which the user should know.
    pub fn warn_if_changed(&self, rows: &[TrialRow]) {
        let name = &self.experiment.info.name;
        let fresh = "Rename the experiment (or use --force) for a fresh study.";
        let foreign = self.foreign_trials(rows);
        if foreign > 0 {
            tracing::warn!(
                "{foreign} trial(s) of `{name}` were proposed from a different search space (the file \
                 changed since); they count toward `search.trials` and inform the search. {fresh}"
            );
        }
        let current = self.experiment.search.method.as_str();
        let mut others: Vec<&str> = rows
            .iter()
            .filter(|r| r.trial.is_some())
            .filter_map(|r| r.method.as_deref().filter(|m| *m != current))
            .collect();
        if !others.is_empty() {
            let n = others.len();
            others.sort();
            others.dedup();
            tracing::warn!(
                "{n} trial(s) of `{name}` were proposed by {} search and the file now asks for \
                 {current}; they keep their method, count toward `search.trials` and inform the \
                 search. {fresh}",
                others.join("/")
            );
        }
    }

    /// Trials recorded for this experiment whose parameters lie outside its current space.
    fn foreign_trials(&self, rows: &[TrialRow]) -> usize {
        let space = &self.experiment.search.space;
        rows.iter()
            .filter(|r| r.trial.is_some())
            .filter(|r| {
                !space.iter().all(|(k, d)| {
                    r.params
                        .get(k)
                        .and_then(toml_value)
                        .is_some_and(|v| d.contains(&v))
                })
            })
            .count()
    }

    /// The next trial of an adaptive search, or None when its budget is spent (or its space holds
    /// no configuration not tried yet). Trial `n` is a pure function of the seed, `n` and the
    /// trials recorded so far, so a sweep run again proposes the same runs.
    pub fn suggest(&self, registry: &Registry) -> Result<Option<Proposal>> {
        if self.exhausted.get() {
            return Ok(None);
        }
        let search = &self.experiment.search;
        let rows = registry.trial_rows(&self.experiment.info.name, self.metric())?;
        let number = rows.iter().filter(|r| r.trial.is_some()).count();
        if !search.method.is_adaptive() || number >= search.trials.unwrap_or(0) {
            return Ok(None);
        }
        let trials: Vec<Trial> = self.trials(&rows).into_iter().map(|(_, t)| t).collect();
        let proposer = match search.method {
            SearchMethod::Tpe => Proposer::Tpe(self.tpe.clone()),
            _ => Proposer::Random,
        };
        let name = &self.experiment.info.name;
        // A configuration tried already would be the same run (its id hashes the config), an
        // invalid one included; so would a float within the axis's resolution of a tried one
        // (`search::same_params`), which hashes to another id.
        let tried = |p: &Params| {
            trials
                .iter()
                .any(|t| search::same_params(&search.space, p, &t.params))
                || self
                    .experiment
                    .trial_config_unchecked(p)
                    .is_ok_and(|c| rows.iter().any(|r| r.id == run_id(name, &c)))
        };
        let Some(params) = search::propose(&proposer, &search.space, &trials, search.seed, number, tried)
        else {
            self.exhausted.set(true);
            tracing::warn!(
                "the search space of {name} holds no configuration not tried yet; \
                 the study ends after {number} trial(s)"
            );
            return Ok(None);
        };
        // A value that does not fit its parameter is a mistake in the space (caught when the
        // file loads); values that fit one by one but not together are an invalid trial. Its id
        // is the hash of its configuration like any run's: stable for the same parameters, and
        // never a valid run's (their configurations differ).
        let config = self
            .experiment
            .trial_config_unchecked(&params)
            .map_err(|e| anyhow::anyhow!("trial {number}: {e}"))?;
        let invalid = config.validate().err().map(|e| e.to_string());
        let id = run_id(name, &config);
        Ok(Some(Proposal {
            number,
            id,
            config,
            invalid,
        }))
    }

    /// The pruner's decision for `run_id`, which has just finished `epoch` of `epochs`; None when
    /// no rule applies (the run goes on).
    pub fn decide(
        &self,
        registry: &Registry,
        run_id: &str,
        epoch: u32,
        epochs: u32,
    ) -> Result<Option<Decision>> {
        if epoch >= epochs || !self.experiment.pruner.is_active() {
            return Ok(None);
        }
        let rows = registry.trial_rows(&self.experiment.info.name, self.metric())?;
        let trials = self.trials(&rows);
        let Some((_, trial)) = trials.iter().find(|(id, _)| id == run_id) else {
            return Ok(None);
        };
        let others: Vec<Trial> = trials.iter().map(|(_, t)| t.clone()).collect();
        let rule = self.experiment.pruner.rule();
        Ok(search::decide(&rule, trial, epoch, &others).map(|d| Decision {
            epoch,
            prune: d.prune,
            rule: d.rule,
            detail: format!("{}: {}", self.metric(), d.detail),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TPE settings a study takes from a file whose `[search]` holds `search`.
    fn tpe_of(search: &str) -> TpeSettings {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("study.toml");
        let text = format!(
            "[experiment]\nname = \"study\"\n\n[search]\nmethod = \"tpe\"\n{search}\n\n\
             [search.space]\nlearning_rate = {{ log_uniform = [1e-4, 1e-2] }}\n"
        );
        std::fs::write(&file, text).unwrap();
        let experiment = Experiment::load(&file, &[]).unwrap();
        Study::new(&experiment).tpe
    }

    #[test]
    fn tpe_is_multivariate_with_a_quarter_of_the_budget_as_start_up_unless_the_file_says() {
        let t = tpe_of("trials = 12");
        assert_eq!(
            (t.n_startup_trials, t.multivariate, t.avoid_repeats),
            (3, true, true)
        );
        let t = tpe_of("trials = 100");
        assert_eq!(t.n_startup_trials, 10);
        let t = tpe_of("trials = 12\nstartup_trials = 5\nmultivariate = false");
        assert_eq!((t.n_startup_trials, t.multivariate), (5, false));
    }
}
