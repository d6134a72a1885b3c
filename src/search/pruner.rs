//! Early stopping: whether a run that has just finished an epoch should go on. Pure functions of
//! the study as it stands; lower metric values are better.
//!
//! The caller asks after every epoch *except the last* (a run that trained all its epochs is
//! complete, not pruned): the rules below never look at `max_epochs`, so asking after the
//! final epoch would judge it like any other.

use super::trial::{Trial, TrialState};

/// An early-stopping rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pruner {
    /// Never stop a run early.
    #[default]
    None,
    /// Asynchronous successive halving (stopping variant): rungs at `grace_epochs * eta^k`.
    Asha {
        grace_epochs: u32,
        reduction_factor: u32,
    },
    /// Optuna's `MedianPruner`: after `warmup_epochs`, stop a run whose best value so far is
    /// worse than the median of the completed runs at the same epoch, once `min_trials` runs
    /// have completed.
    Median { warmup_epochs: u32, min_trials: usize },
}

/// A rule's verdict on one run at one epoch, for the run's event log.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub prune: bool,
    /// Which rule, e.g. "asha rung 1 (epoch 3)".
    pub rule: String,
    /// The numbers compared.
    pub detail: String,
}

impl Pruner {
    /// Checks the settings against the runs' epoch count.
    pub fn validate(&self, max_epochs: u32) -> Result<(), String> {
        match *self {
            Pruner::None => Ok(()),
            Pruner::Asha {
                grace_epochs,
                reduction_factor,
            } => {
                if grace_epochs < 1 {
                    Err("grace_epochs must be at least 1".into())
                } else if grace_epochs >= max_epochs {
                    Err(format!(
                        "grace_epochs ({grace_epochs}) must be less than the runs' epochs ({max_epochs}), \
                         or no run could ever be stopped"
                    ))
                } else if reduction_factor < 2 {
                    Err(format!(
                        "reduction_factor must be at least 2, got {reduction_factor}"
                    ))
                } else {
                    Ok(())
                }
            }
            Pruner::Median {
                warmup_epochs,
                min_trials,
            } => {
                if min_trials < 1 {
                    Err("min_trials must be at least 1".into())
                } else if u64::from(warmup_epochs) + 1 >= u64::from(max_epochs) {
                    Err(format!(
                        "warmup_epochs ({warmup_epochs}) must be less than the runs' epochs minus one \
                         ({}), or no run could ever be stopped",
                        max_epochs.saturating_sub(1)
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// The epochs at which ASHA can stop a run: `grace * eta^k` for `k = 0, 1, ...`, below
/// `max_epochs` (a run at its last epoch is complete). Empty for invalid settings.
pub fn rungs(grace: u32, eta: u32, max_epochs: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if grace == 0 || eta < 2 {
        return out;
    }
    let mut r = Some(grace);
    while let Some(e) = r.filter(|e| *e < max_epochs) {
        out.push(e);
        r = e.checked_mul(eta);
    }
    out
}

/// The rung index `k` with `epoch = grace * eta^k`, if `epoch` is a rung.
fn rung_of(grace: u32, eta: u32, epoch: u32) -> Option<u32> {
    if grace == 0 || eta < 2 {
        return None;
    }
    let (mut r, mut k) = (grace, 0);
    while r < epoch {
        r = r.checked_mul(eta)?;
        k += 1;
    }
    (r == epoch).then_some(k)
}

/// Called when `trial` has just finished `epoch` (its `intermediate` holds values up to and
/// including it) and asks whether to continue. `others` are the other trials of the study (any
/// state) as they stand now; an entry with `trial`'s number is skipped, so the whole study may
/// be passed. `None`: no rule applies at this epoch (continue): not a rung, in warm-up, too
/// few completed trials, or no value of `trial` at `epoch`.
pub fn decide(pruner: &Pruner, trial: &Trial, epoch: u32, others: &[Trial]) -> Option<Decision> {
    let others = || others.iter().filter(|t| t.number != trial.number);
    match *pruner {
        Pruner::None => None,
        Pruner::Asha {
            grace_epochs,
            reduction_factor,
        } => asha(grace_epochs, reduction_factor, trial, epoch, others()),
        Pruner::Median {
            warmup_epochs,
            min_trials,
        } => median(warmup_epochs, min_trials, trial, epoch, others()),
    }
}

/// ASHA's stopping rule at a rung.
///
/// The values competing at rung epoch `e` are the values at `e` of every trial that has one,
/// whatever its state, the asking trial's own included (NaN values excluded: a run whose value
/// is NaN is stopped outright). With `n` values the best `max(1, floor(n / eta))` continue: the
/// run continues iff its value is at most the `max(1, floor(n / eta))`-th smallest.
///
/// Fewer than `eta` values: `floor(n / eta)` is 0, and we let only the best so far continue
/// (Optuna's `SuccessiveHalvingPruner` does the same with its `promotable_idx = 0`). Ray Tune's
/// `AsyncHyperBandScheduler` instead compares with an interpolated percentile of the *other*
/// runs' values, which for a few values is an arbitrary point between them. Continuing
/// everything until `eta` values exist would be the lenient alternative; we chose the Optuna
/// rule because it is exactly "top 1/eta, at least one", never waits for a rung to fill, never
/// stops the best run seen so far (so the first run of a study always passes), and matches the
/// reference that the rest of this module follows. The cost: early in a study, a run that is
/// merely second-best at a rung is stopped; with a handful of trials that errs towards saving
/// epochs.
fn asha<'a>(
    grace: u32,
    eta: u32,
    trial: &Trial,
    epoch: u32,
    others: impl Iterator<Item = &'a Trial>,
) -> Option<Decision> {
    let k = rung_of(grace, eta, epoch)?;
    let value = *trial.intermediate.get(&epoch)?;
    let rule = format!("asha rung {k} (epoch {epoch})");
    if value.is_nan() {
        return Some(Decision {
            prune: true,
            rule,
            detail: format!("value at epoch {epoch} is NaN"),
        });
    }
    let mut values: Vec<f64> = others
        .filter_map(|t| t.intermediate.get(&epoch).copied())
        .filter(|v| !v.is_nan())
        .collect();
    values.push(value);
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let keep = (n / eta as usize).max(1);
    let cutoff = values[keep - 1];
    let prune = value > cutoff;
    let verdict = if prune { "not in" } else { "in" };
    let detail = if n < eta as usize {
        format!(
            "value {value:.4} {verdict} top 1 of {n} value(s) at epoch {epoch} (best {cutoff:.4}; \
             fewer than {eta}, so only the best continues)"
        )
    } else {
        format!("value {value:.4} {verdict} top 1/{eta} of {n} values at epoch {epoch} (cutoff {cutoff:.4})")
    };
    Some(Decision { prune, rule, detail })
}

/// Optuna's `MedianPruner` (`PercentilePruner` at 50, `interval_steps = 1`,
/// `n_min_trials = 1`), with its 0-based step `s` as our epoch `s + 1`: no rule applies at
/// epochs `1..=warmup_epochs`, nor while fewer than `min_trials` other trials are complete, nor
/// when no complete trial has a (non-NaN) value at this epoch. Otherwise the run is stopped iff
/// its best value over epochs `1..=epoch` is worse than (greater than) the median of the
/// complete trials' values at `epoch`; a run with no non-NaN value at all is stopped.
fn median<'a>(
    warmup: u32,
    min_trials: usize,
    trial: &Trial,
    epoch: u32,
    others: impl Iterator<Item = &'a Trial>,
) -> Option<Decision> {
    if epoch <= warmup {
        return None;
    }
    let completed: Vec<&Trial> = others.filter(|t| t.state == TrialState::Complete).collect();
    if completed.is_empty() || completed.len() < min_trials {
        return None;
    }
    let mut at: Vec<f64> = completed
        .iter()
        .filter_map(|t| t.intermediate.get(&epoch).copied())
        .filter(|v| !v.is_nan())
        .collect();
    if at.is_empty() {
        return None;
    }
    at.sort_by(f64::total_cmp);
    let rule = format!("median at epoch {epoch}");
    let best = trial
        .intermediate
        .range(..=epoch)
        .map(|(_, v)| *v)
        .filter(|v| !v.is_nan())
        .fold(None, |b: Option<f64>, v| Some(b.map_or(v, |b| b.min(v))));
    let Some(best) = best else {
        return Some(Decision {
            prune: true,
            rule,
            detail: "no value so far is a number (all NaN)".into(),
        });
    };
    let m = crate::stats::median(at.clone()).unwrap_or(f64::NAN);
    let prune = best > m;
    let verdict = if prune { "worse than" } else { "not worse than" };
    Some(Decision {
        prune,
        rule,
        detail: format!(
            "best value so far {best:.4} {verdict} median {m:.4} of {} completed trial(s) at epoch {epoch}",
            at.len()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::space::Params;

    /// A trial with values at epochs 1, 2, ... from `curve`.
    fn t(number: usize, state: TrialState, curve: &[f64]) -> Trial {
        Trial {
            number,
            params: Params::new(),
            state,
            value: (state == TrialState::Complete)
                .then(|| curve.iter().copied().fold(f64::INFINITY, f64::min)),
            intermediate: curve
                .iter()
                .enumerate()
                .map(|(i, v)| (i as u32 + 1, *v))
                .collect(),
        }
    }

    use TrialState::{Complete, Pruned, Running};

    #[test]
    fn rung_epochs() {
        assert_eq!(rungs(1, 3, 6), vec![1, 3]);
        assert_eq!(rungs(1, 2, 25), vec![1, 2, 4, 8, 16]);
        assert_eq!(rungs(2, 3, 18), vec![2, 6]);
        assert_eq!(rungs(2, 3, 19), vec![2, 6, 18]);
        assert_eq!(rungs(1, 1, 6), Vec::<u32>::new());
        assert_eq!(rungs(u32::MAX / 2, 3, u32::MAX), vec![u32::MAX / 2]);
        assert_eq!(rung_of(1, 3, 9), Some(2));
        assert_eq!(rung_of(2, 3, 4), None);
    }

    #[test]
    fn asha_hand_computed() {
        let asha = Pruner::Asha {
            grace_epochs: 1,
            reduction_factor: 3,
        };
        // Values at epoch 3 (rung 1) of five trials, whatever their state:
        //   7.0 (complete), 7.301 (running, past epoch 3), 7.5 (running), 8.0 (pruned at this
        //   rung), and ours 7.412.
        // Sorted: 7.0, 7.301, 7.412, 7.5, 8.0; n = 5, keep = max(1, 5 / 3) = 1, cutoff 7.0:
        // 7.412 > 7.0, so stop.
        let others = vec![
            t(0, Complete, &[9.0, 8.0, 7.0, 6.5, 6.4, 6.3]),
            t(1, Running, &[9.1, 8.1, 7.301, 7.2]),
            t(2, Running, &[9.5, 8.5, 7.5]),
            t(3, Pruned, &[9.9, 8.9, 8.0]),
            t(4, Pruned, &[9.9]), // no value at epoch 3: does not compete there
        ];
        let me = t(5, Running, &[9.2, 8.2, 7.412]);
        let d = decide(&asha, &me, 3, &others).unwrap();
        assert!(d.prune);
        assert_eq!(d.rule, "asha rung 1 (epoch 3)");
        assert_eq!(
            d.detail,
            "value 7.4120 not in top 1/3 of 5 values at epoch 3 (cutoff 7.0000)"
        );
        // Epoch 2 is not a rung: no rule applies.
        assert_eq!(decide(&asha, &me, 2, &others), None);

        // Six values at epoch 3: keep = 6 / 3 = 2, the cutoff is the 2nd smallest.
        // 7.0, 7.1 (ours), 7.301, 7.5, 8.0, 8.2: ours is 2nd, so continue.
        let mut six = others.clone();
        six.push(t(6, Running, &[9.0, 8.0, 8.2]));
        let me = t(5, Running, &[9.2, 8.2, 7.1]);
        let d = decide(&asha, &me, 3, &six).unwrap();
        assert!(!d.prune, "{d:?}");
        assert_eq!(
            d.detail,
            "value 7.1000 in top 1/3 of 6 values at epoch 3 (cutoff 7.1000)"
        );
        // The whole study may be passed: the asking trial's own entry is skipped, not counted
        // twice (the detail would then say 7 values).
        let mut all = six.clone();
        all.push(me.clone());
        assert_eq!(decide(&asha, &me, 3, &all), Some(d));
    }

    #[test]
    fn asha_with_fewer_than_eta_values() {
        let asha = Pruner::Asha {
            grace_epochs: 1,
            reduction_factor: 3,
        };
        // The first trial at rung 0 (epoch 1): n = 1, it is the best, continue.
        let first = t(0, Running, &[5.0]);
        let d = decide(&asha, &first, 1, &[]).unwrap();
        assert!(!d.prune);
        // Second trial: values 5.0 and 5.5; n = 2 < eta = 3, keep = max(1, 0) = 1: only the
        // best (5.0) continues, so 5.5 stops and 4.9 continues.
        let d = decide(&asha, &t(1, Running, &[5.5]), 1, std::slice::from_ref(&first)).unwrap();
        assert!(d.prune);
        assert_eq!(
            d.detail,
            "value 5.5000 not in top 1 of 2 value(s) at epoch 1 (best 5.0000; fewer than 3, so only the best continues)"
        );
        assert!(
            !decide(&asha, &t(1, Running, &[4.9]), 1, std::slice::from_ref(&first))
                .unwrap()
                .prune
        );
        // A tie with the best continues (<=).
        assert!(
            !decide(&asha, &t(1, Running, &[5.0]), 1, std::slice::from_ref(&first))
                .unwrap()
                .prune
        );
        // NaN stops; NaN values of others do not compete.
        assert!(
            decide(
                &asha,
                &t(1, Running, &[f64::NAN]),
                1,
                std::slice::from_ref(&first)
            )
            .unwrap()
            .prune
        );
        let nan = t(2, Pruned, &[f64::NAN]);
        let d = decide(&asha, &t(1, Running, &[4.0]), 1, &[nan]).unwrap();
        assert!(d.detail.contains("top 1 of 1 value(s)"), "{}", d.detail);
    }

    #[test]
    fn median_hand_computed() {
        let median = Pruner::Median {
            warmup_epochs: 2,
            min_trials: 3,
        };
        // Completed trials' values at epoch 4: 6.0, 6.4, 7.0, 9.0 -> median (6.4 + 7.0) / 2 = 6.7.
        // A running trial with 5.0 at epoch 4 and a pruned one at 1.0 do not count (not complete).
        let others = vec![
            t(0, Complete, &[9.0, 8.0, 7.0, 6.0, 5.9]),
            t(1, Complete, &[9.0, 8.0, 7.0, 6.4, 6.3]),
            t(2, Complete, &[9.0, 8.0, 7.5, 7.0, 6.9]),
            t(3, Complete, &[9.9, 9.5, 9.2, 9.0, 8.9]),
            t(4, Running, &[9.0, 8.0, 6.0, 5.0]),
            t(5, Pruned, &[1.0, 1.0, 1.0, 1.0]),
        ];
        // Ours: best so far min(8.0, 7.5, 6.9, 6.8) = 6.8 > 6.7: stop.
        let me = t(9, Running, &[8.0, 7.5, 6.9, 6.8]);
        let d = decide(&median, &me, 4, &others).unwrap();
        assert!(d.prune);
        assert_eq!(d.rule, "median at epoch 4");
        assert_eq!(
            d.detail,
            "best value so far 6.8000 worse than median 6.7000 of 4 completed trial(s) at epoch 4"
        );
        // Best so far counts earlier epochs: 6.5 at epoch 3, then 6.9 at epoch 4: 6.5 <= 6.7.
        let me = t(9, Running, &[8.0, 7.5, 6.5, 6.9]);
        assert!(!decide(&median, &me, 4, &others).unwrap().prune);
        // Warmup: epochs 1 and 2 are never judged (Optuna's 0-based step < n_warmup_steps).
        // At epoch 2 the median of completed values would be 8.0 and ours 9.9 is worse: still
        // no rule.
        let slow = t(9, Running, &[9.9, 9.9]);
        assert_eq!(decide(&median, &slow, 2, &others), None);
        // Epoch 3: completed 7.0, 7.0, 7.5, 9.2 -> median 7.25; ours 9.9 > 7.25: stop.
        let slow = t(9, Running, &[9.9, 9.9, 9.9]);
        assert!(decide(&median, &slow, 3, &others).unwrap().prune);
        // min_trials: with only two completed trials, no rule applies.
        assert_eq!(decide(&median, &slow, 3, &others[..2]), None);
        // No completed trial reached epoch 6: no rule applies.
        let long = t(9, Running, &[9.9, 9.9, 9.9, 9.9, 9.9, 9.9]);
        assert_eq!(decide(&median, &long, 6, &others), None);
    }

    #[test]
    fn validation() {
        let asha = |g, r| Pruner::Asha {
            grace_epochs: g,
            reduction_factor: r,
        };
        assert_eq!(asha(1, 3).validate(6), Ok(()));
        assert!(asha(0, 3).validate(6).unwrap_err().contains("at least 1"));
        assert!(asha(6, 3)
            .validate(6)
            .unwrap_err()
            .contains("less than the runs' epochs (6)"));
        assert_eq!(
            asha(1, 1).validate(6).unwrap_err(),
            "reduction_factor must be at least 2, got 1"
        );
        let median = |w, m| Pruner::Median {
            warmup_epochs: w,
            min_trials: m,
        };
        assert_eq!(median(4, 5).validate(6), Ok(()));
        assert!(median(5, 5).validate(6).is_err());
        assert!(median(0, 0).validate(6).is_err());
        assert_eq!(Pruner::None.validate(1), Ok(()));
    }
}
