//! The sweep's ETAs, kept from the coordinator's events for the display and the log.
//!
//! ETAs come from the first seconds: before a run reports its speed, from the sweep's estimate
//! (see [`crate::estimate`]); then from its measured images/s, with evaluation and samples per
//! epoch from the estimate scaled by how far measured speeds differ from estimated ones. The
//! sweep's ETA schedules what is left over the slots as the coordinator will
//! ([`crate::slots::assign`]): each running run frees its slot when its ETA says, and queued runs
//! take the slot that frees first.

use std::collections::HashMap;

use crate::estimate::{RunWork, Speed, SweepEstimate};
use crate::registry::{Progress, RunStatus};
use crate::schedule::{SweepPlan, Work};
use crate::slots::assign;

/// What the ETAs know of one running run.
pub struct RunEta {
    pub place: String,
    pub epochs: u32,
    pub images_per_epoch: i64,
    pub progress: Option<Progress>,
    /// Its work and estimated speed, when the sweep was estimated.
    plan: Option<(RunWork, Speed)>,
}

/// A run not started yet: its id (none for a trial still to be proposed), work and speed.
type Queued = (Option<String>, RunWork, Option<Speed>);

pub struct SweepEta {
    runs: HashMap<String, RunEta>,
    /// Epochs planned and not yet trained, over the whole sweep.
    remaining: Work,
    /// Runs still to start, in order, from the estimate.
    queued: Option<Vec<Queued>>,
    /// Measured over estimated training speed of runs that reported one.
    ratios: HashMap<String, f64>,
    slots: usize,
}

impl SweepEta {
    /// ETAs for a sweep estimated as `estimate` (what each run not started yet will take), or
    /// not estimated (`--quiet` skips it).
    pub fn new(estimate: Option<&SweepEstimate>) -> Self {
        Self {
            runs: HashMap::new(),
            remaining: Work::default(),
            queued: estimate.map(|e| {
                e.pending()
                    .map(|r| (r.work.id.clone(), r.work.clone(), r.speed))
                    .collect()
            }),
            ratios: HashMap::new(),
            slots: 1,
        }
    }

    /// The work left and the runs in flight at once, as the coordinator planned them.
    pub fn planned(&mut self, plan: &SweepPlan) {
        self.remaining = plan.remaining;
        self.slots = plan.slots.max(1);
    }

    pub fn run(&self, run_id: &str) -> Option<&RunEta> {
        self.runs.get(run_id)
    }

    /// Takes a run off the queue of the estimate: by id, or (a new trial) the next proposal.
    fn dequeue(&mut self, run_id: &str) -> Option<(RunWork, Speed)> {
        let queued = self.queued.as_mut()?;
        let i = queued
            .iter()
            .position(|q| q.0.as_deref() == Some(run_id))
            .or_else(|| queued.iter().position(|q| q.0.is_none()))?;
        let (_, work, speed) = queued.remove(i);
        Some((work, speed?))
    }

    /// A run started; returns the seconds it is estimated to take, when it was estimated.
    pub fn started(&mut self, run_id: &str, place: &str, epochs: u32, images_per_epoch: i64) -> Option<f64> {
        let plan = self.dequeue(run_id);
        let about = plan
            .as_ref()
            .map(|(w, s)| s.scaled(self.correction()).run_seconds(w));
        self.runs.insert(
            run_id.to_owned(),
            RunEta {
                place: place.to_owned(),
                epochs,
                images_per_epoch,
                progress: None,
                plan,
            },
        );
        about
    }

    /// A running run moved; true when its place changed.
    pub fn place(&mut self, run_id: &str, place: &str) -> bool {
        match self.runs.get_mut(run_id) {
            Some(r) if r.place != place => {
                r.place = place.to_owned();
                true
            }
            _ => false,
        }
    }

    /// The latest progress of a running run; false for a run not known.
    pub fn progress(&mut self, run_id: &str, p: &Progress) -> bool {
        let Some(r) = self.runs.get_mut(run_id) else {
            return false;
        };
        r.progress = Some(p.clone());
        if let (Some(rate), Some((_, s))) = (p.images_per_sec, &r.plan) {
            self.ratios
                .insert(run_id.to_owned(), rate / s.train_images_per_sec.max(1e-9));
        }
        true
    }

    /// A run finished an epoch: its images leave the work left.
    pub fn epoch(&mut self, run_id: &str, epoch: u32) {
        let images = self
            .runs
            .get(run_id)
            .map_or(0, |r| r.images_per_epoch.max(0) as u64);
        self.remaining.epochs = self.remaining.epochs.saturating_sub(1);
        self.remaining.images = self.remaining.images.saturating_sub(images);
        if let Some(p) = self.runs.get_mut(run_id).and_then(|r| r.progress.as_mut()) {
            p.epoch = epoch + 1;
            p.step_in_epoch = 0;
        }
    }

    /// A run ended; the epochs it will not train leave the sweep's work. Returns how many.
    pub fn finished(&mut self, run_id: &str, status: RunStatus) -> u64 {
        let Some(r) = self.runs.remove(run_id) else {
            return 0;
        };
        let trained = r.progress.as_ref().map_or(0, |p| p.epoch.saturating_sub(1));
        let skipped = r.epochs.saturating_sub(trained) as u64;
        if status == RunStatus::Interrupted || status == RunStatus::Completed || skipped == 0 {
            return 0;
        }
        self.remaining.epochs = self.remaining.epochs.saturating_sub(skipped);
        self.remaining.images = self
            .remaining
            .images
            .saturating_sub(skipped * r.images_per_epoch.max(0) as u64);
        skipped
    }

    /// A proposed trial will not train: its planned work leaves the sweep.
    pub fn untrained(&mut self, epochs: u32, images_per_epoch: i64) {
        let _ = self.queued.as_mut().and_then(|q| {
            let i = q.iter().position(|q| q.0.is_none())?;
            Some(q.remove(i))
        });
        let epochs = u64::from(epochs);
        self.remaining.epochs = self.remaining.epochs.saturating_sub(epochs);
        self.remaining.images = self
            .remaining
            .images
            .saturating_sub(epochs * images_per_epoch.max(0) as u64);
    }

    /// How much faster runs train than estimated (the median over those that reported a speed;
    /// 1 before any did).
    fn correction(&self) -> f64 {
        let mut v: Vec<f64> = self
            .ratios
            .values()
            .copied()
            .filter(|r| r.is_finite() && *r > 0.0)
            .collect();
        if v.is_empty() {
            return 1.0;
        }
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    /// The mean measured speed of the running runs, for runs without an estimate.
    fn mean_rate(&self) -> Option<f64> {
        let rates: Vec<f64> = self
            .runs
            .values()
            .filter_map(|r| r.progress.as_ref()?.images_per_sec)
            .filter(|v| *v > 0.0)
            .collect();
        (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64)
    }

    /// Seconds a running run still needs: its training images left at its measured speed (the
    /// estimated one before it reports), plus evaluation and samples of its epochs left. The
    /// flag says whether a measured speed went into it.
    pub fn run_left(&self, r: &RunEta) -> Option<(f64, bool)> {
        let correction = self.correction();
        let estimated = r.plan.as_ref().map(|(w, s)| (w, s.scaled(correction)));
        let measured = r
            .progress
            .as_ref()
            .and_then(|p| p.images_per_sec)
            .filter(|v| *v > 0.0);
        let rate = measured.or_else(|| estimated.as_ref().map(|(_, s)| s.train_images_per_sec))?;
        let (epochs_left, fraction) = match &r.progress {
            Some(p) => (
                (r.epochs as i64 - p.epoch as i64 + 1).max(0) as f64,
                p.step_in_epoch as f64 / p.steps_per_epoch.max(1) as f64,
            ),
            None => (
                estimated.as_ref().map_or(r.epochs, |(w, _)| w.epochs_left) as f64,
                0.0,
            ),
        };
        let images = ((epochs_left - fraction).max(0.0)) * r.images_per_epoch as f64;
        let overhead = estimated.as_ref().map_or(0.0, |(w, s)| s.epoch_overhead(w));
        let startup = match (&r.progress, &estimated) {
            (None, Some((_, s))) => s.startup_seconds,
            _ => 0.0,
        };
        Some((
            startup + images / rate + epochs_left * overhead,
            measured.is_some(),
        ))
    }

    /// The sweep's ETA: running runs free their slots when their ETAs say, and the queued runs
    /// take the slot that frees first. The flag says whether measured speeds went into it.
    pub fn sweep_eta(&self) -> Option<(f64, bool)> {
        let mut busy = Vec::new();
        let mut measured = false;
        for r in self.runs.values() {
            let (left, m) = self.run_left(r)?;
            busy.push(left);
            measured |= m;
        }
        busy.resize(busy.len().max(self.slots), 0.0);
        let durations: Vec<f64> = match &self.queued {
            Some(queued) => {
                let correction = self.correction();
                queued
                    .iter()
                    .map(|(_, w, s)| Some(s.as_ref()?.scaled(correction).run_seconds(w)))
                    .collect::<Option<_>>()?
            }
            None => {
                measured = true;
                self.unestimated_durations()?
            }
        };
        if self.runs.is_empty() && durations.is_empty() {
            return None;
        }
        Some((assign(&busy, durations.len(), |i, _| durations[i]).1, measured))
    }

    /// Without an estimate: what is not running yet, at the running runs' mean speed, spread
    /// over the slots in equal shares.
    fn unestimated_durations(&self) -> Option<Vec<f64>> {
        let running: f64 = self
            .runs
            .values()
            .map(|r| {
                let p = r.progress.as_ref();
                let left = p.map_or(r.epochs as f64, |p| {
                    (r.epochs as f64 - p.epoch as f64 + 1.0)
                        - p.step_in_epoch as f64 / p.steps_per_epoch.max(1) as f64
                });
                left.max(0.0) * r.images_per_epoch as f64
            })
            .sum();
        let rest = (self.remaining.images as f64 - running).max(0.0);
        let rate = self.mean_rate()?;
        Some(if rest > 0.0 {
            vec![rest / rate / self.slots as f64; self.slots]
        } else {
            Vec::new()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunConfig;

    const SPEED: Speed = Speed {
        train_images_per_sec: 100.0,
        eval_images_per_sec: 1e9,
        sample_seconds_per_image: 0.0,
        epoch_fixed_seconds: 0.0,
        startup_seconds: 0.0,
    };

    /// `n` runs of 2 epochs of 1,000 images, 10 s an epoch at the estimated speed.
    fn estimate(n: usize, slots: usize) -> SweepEstimate {
        let config = RunConfig {
            epochs: 2,
            train_subset: 1000,
            epoch_samples: 0,
            ..RunConfig::default()
        };
        crate::estimate::testing::estimate(n, slots, &config, SPEED)
    }

    fn progress(epoch: u32, step: i64, rate: f64) -> Progress {
        Progress {
            epoch,
            step_in_epoch: step,
            steps_per_epoch: 10,
            images_per_sec: Some(rate),
            at: None,
        }
    }

    fn plan(slots: usize, remaining: Work) -> SweepPlan {
        SweepPlan {
            slots,
            remaining,
            ..SweepPlan::default()
        }
    }

    #[test]
    fn the_sweep_eta_comes_from_the_estimate_then_from_measured_speeds() {
        let mut p = SweepEta::new(Some(&estimate(4, 2)));
        p.planned(&plan(2, Work::default()));
        let close = |eta: Option<(f64, bool)>, want: f64, measured: bool| {
            eta.is_some_and(|(t, m)| (t - want).abs() < 1e-3 && m == measured)
        };
        // Before anything runs: 4 runs of 20 s on 2 slots.
        assert!(close(p.sweep_eta(), 40.0, false), "{:?}", p.sweep_eta());
        p.started("r0", "cpu", 2, 1000);
        p.started("r1", "cpu", 2, 1000);
        assert!(close(p.sweep_eta(), 40.0, false), "{:?}", p.sweep_eta());
        // Both report half their first epoch done at twice the estimated speed: each has 1,500
        // images left (7.5 s), and the two queued runs now take 10 s each.
        p.progress("r0", &progress(1, 5, 200.0));
        p.progress("r1", &progress(1, 5, 200.0));
        assert!(close(p.sweep_eta(), 17.5, true), "{:?}", p.sweep_eta());
        let r0 = p.run("r0").unwrap();
        assert!(close(p.run_left(r0), 7.5, true));
        // An epoch ends: its images leave the run's ETA.
        p.epoch("r0", 1);
        let r0 = p.run("r0").unwrap();
        assert!(close(p.run_left(r0), 5.0, true));
        p.finished("r0", RunStatus::Completed);
        p.started("r2", "cpu", 2, 1000);
        let r2 = p.run("r2").unwrap();
        assert!(close(p.run_left(r2), 10.0, false), "the estimate, scaled");
    }

    #[test]
    fn without_an_estimate_the_eta_waits_for_a_speed() {
        let work = Work {
            epochs: 4,
            images: 4000,
        };
        let mut p = SweepEta::new(None);
        p.planned(&plan(1, work));
        p.started("a", "cpu", 2, 1000);
        assert_eq!(p.sweep_eta(), None);
        p.progress("a", &progress(1, 0, 100.0));
        // 2,000 images of "a", then 2,000 more queued: 40 s.
        let (eta, _) = p.sweep_eta().unwrap();
        assert!((eta - 40.0).abs() < 1e-9, "{eta}");
    }
}
