//! When a run has diverged.
//!
//! The rule: a training loss that is NaN or infinite; a mean training loss over the last
//! [`WINDOW`] steps (over all steps so far once there are [`MIN_STEPS`]) above [`FACTOR`] times
//! `ln L`, the loss of a model that gives each of the `L` levels equal probability; or a test
//! loss above that after an epoch. A model starts near `ln L` and learns to beat it; ten times it
//! is beyond anything but a blow-up (a learning rate far too high), which would otherwise run to
//! the end and be recorded as completed.

use std::collections::VecDeque;

/// Steps averaged by the rule.
pub const WINDOW: usize = 20;
/// Steps before the mean is judged (a short epoch still gets judged).
pub const MIN_STEPS: usize = 5;
/// How many times the uniform model's loss counts as diverged.
pub const FACTOR: f64 = 10.0;

/// The loss left the range of a learning model: the run diverged and is stopped.
#[derive(Debug, thiserror::Error)]
#[error("{reason}{}", if *step > 0 { format!(" at step {step}") } else { String::new() })]
pub struct Diverged {
    pub step: i64,
    pub loss: f64,
    pub reason: String,
}

/// Watches the losses of one run.
#[derive(Debug, Clone)]
pub struct Divergence {
    limit: f64,
    levels: i64,
    recent: VecDeque<f64>,
}

impl Divergence {
    pub fn new(color_levels: i64) -> Self {
        Self {
            limit: FACTOR * (color_levels as f64).ln(),
            levels: color_levels,
            recent: VecDeque::with_capacity(WINDOW),
        }
    }

    /// Records the loss of step `step`; an error once the run has diverged.
    pub fn check(&mut self, step: i64, loss: f64) -> Result<(), Diverged> {
        if !loss.is_finite() {
            return Err(Diverged {
                step,
                loss,
                reason: format!("loss is {loss}"),
            });
        }
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(loss);
        let mean = self.recent.iter().sum::<f64>() / self.recent.len() as f64;
        if self.recent.len() >= MIN_STEPS && mean > self.limit {
            return Err(Diverged {
                step,
                loss,
                reason: format!(
                    "mean loss of the last {WINDOW} steps is {mean:.4e} nats, over {FACTOR} × ln {} = {:.3} \
                     (ten times the loss of a model guessing uniformly)",
                    self.levels, self.limit
                ),
            });
        }
        Ok(())
    }

    /// Checks an epoch's test loss (nats per sub-pixel).
    pub fn check_test(&self, epoch: u32, nll: f64) -> Result<(), Diverged> {
        if nll.is_finite() && nll <= self.limit {
            return Ok(());
        }
        Err(Diverged {
            step: 0,
            loss: nll,
            reason: format!(
                "test loss after epoch {epoch} is {nll:.4e} nats, over {FACTOR} × ln {} = {:.3} \
                 (ten times the loss of a model guessing uniformly)",
                self.levels, self.limit
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_and_sustained_blow_ups_diverge_but_spikes_do_not() {
        let mut d = Divergence::new(2);
        assert!(d.check(1, f64::NAN).is_err());
        let mut d = Divergence::new(2);
        // One spike far over the limit is averaged away.
        assert!(d.check(1, 20.0).is_ok());
        for s in 2..=40 {
            assert!(d.check(s, 0.5).is_ok(), "step {s}");
        }
        // Steps at 10 × ln 2 + a bit: diverged as soon as there are enough to judge.
        let mut d = Divergence::new(2);
        for s in 1..MIN_STEPS as i64 {
            assert!(d.check(s, 7.0).is_ok());
        }
        let e = d.check(MIN_STEPS as i64, 7.0).unwrap_err();
        assert!(e.to_string().contains("10 × ln 2"), "{e}");
        assert!(d.check_test(1, 0.4).is_ok());
        assert!(d.check_test(1, 1e17).is_err());
        assert!(d.check_test(1, f64::NAN).is_err());
    }
}
