//! The sweep's progress display. On a terminal: an overall bar counting epochs with the sweep's
//! ETA, and one bar per running run over its current epoch's steps with its epoch, images/s and
//! ETA. Elsewhere (CI, `nohup`, Slurm logs): one plain line per run per epoch, and one when a run
//! starts or ends. Fed by the coordinator from the journals it ingests.
//!
//! ETAs come from the first seconds: before a run reports its speed, from the sweep's estimate
//! (see [`crate::estimate`]); then from its measured images/s, with evaluation and samples per
//! epoch from the estimate scaled by how far measured speeds differ from estimated ones. The
//! sweep's ETA schedules what is left over the slots as the coordinator will: each running run
//! frees its slot when its ETA says, and queued runs take the slot that frees first.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::estimate::{schedule, RunWork, Speed, SweepEstimate};
use crate::registry::{Progress, RunStatus};

/// `1h02m`, `3m05s`, `42s`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ if s < 48 * 3600 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{:.1} days", s as f64 / 86400.0),
    }
}

fn secs(s: f64) -> String {
    duration(Duration::from_secs_f64(s.max(0.0)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bars,
    Lines,
    Quiet,
}

/// What the display knows of one running run.
struct RunLine {
    bar: ProgressBar,
    place: String,
    epochs: u32,
    images_per_epoch: i64,
    progress: Option<Progress>,
    /// Its work and estimated speed, when the sweep was estimated.
    plan: Option<(RunWork, Speed)>,
}

/// Work still to do, for ETAs when there is no estimate: images of epochs not trained yet.
#[derive(Debug, Clone, Copy, Default)]
pub struct Work {
    pub epochs: u64,
    pub images: u64,
}

/// A run not started yet: its id (none for a trial still to be proposed), work and speed.
type Queued = (Option<String>, RunWork, Option<Speed>);

pub struct SweepProgress {
    mode: Mode,
    multi: MultiProgress,
    overall: ProgressBar,
    runs: HashMap<String, RunLine>,
    /// Epochs planned and not yet trained, over the whole sweep.
    remaining: Work,
    /// Runs still to start, in order, from the estimate.
    queued: Option<Vec<Queued>>,
    /// Measured over estimated training speed of runs that reported one.
    ratios: HashMap<String, f64>,
    slots: usize,
    started: Instant,
}

impl SweepProgress {
    /// `total_epochs` over the sweep, `done_epochs` of them trained before; `remaining` the work
    /// left; `slots` runs in parallel.
    pub fn new(total_epochs: u64, done_epochs: u64, remaining: Work, slots: usize, quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Lines
        };
        Self::with_mode(mode, total_epochs, done_epochs, remaining, slots)
    }

    fn with_mode(mode: Mode, total_epochs: u64, done_epochs: u64, remaining: Work, slots: usize) -> Self {
        let multi = MultiProgress::with_draw_target(match mode {
            Mode::Bars => ProgressDrawTarget::stderr(),
            _ => ProgressDrawTarget::hidden(),
        });
        let overall = multi.add(ProgressBar::new(total_epochs.max(1)));
        overall.set_style(
            ProgressStyle::with_template("epochs [{bar:30}] {pos}/{len} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        overall.set_position(done_epochs);
        Self {
            mode,
            multi,
            overall,
            runs: HashMap::new(),
            remaining,
            queued: None,
            ratios: HashMap::new(),
            slots: slots.max(1),
            started: Instant::now(),
        }
    }

    /// The sweep's estimate: what each run not started yet will take, for ETAs before (and
    /// besides) measured speeds.
    pub fn set_estimate(&mut self, estimate: &SweepEstimate) {
        self.queued = Some(
            estimate
                .pending()
                .map(|r| (r.work.id.clone(), r.work.clone(), r.speed))
                .collect(),
        );
        self.refresh_sweep();
    }

    /// Prints a line above the bars (or plainly).
    pub fn line(&self, text: &str) {
        match self.mode {
            Mode::Bars => {
                let _ = self.multi.println(text);
            }
            Mode::Lines => eprintln!("{text}"),
            Mode::Quiet => {}
        }
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

    pub fn started(&mut self, run_id: &str, place: &str, epochs: u32, images_per_epoch: i64) {
        let bar = self.multi.add(ProgressBar::new(1));
        bar.set_style(
            ProgressStyle::with_template("  {prefix} [{bar:20}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{run_id} {place}"));
        let plan = self.dequeue(run_id);
        let about = plan
            .as_ref()
            .map(|(w, s)| s.scaled(self.correction()).run_seconds(w));
        bar.set_message(match about {
            Some(t) => format!("starting (about {})", secs(t)),
            None => "starting".into(),
        });
        self.line(&match about {
            Some(t) => format!("{run_id} started on {place} (about {})", secs(t)),
            None => format!("{run_id} started on {place}"),
        });
        self.runs.insert(
            run_id.to_owned(),
            RunLine {
                bar,
                place: place.to_owned(),
                epochs,
                images_per_epoch,
                progress: None,
                plan,
            },
        );
    }

    /// Updates where a run stands: on a terminal in its bar; in a log as a line for each move
    /// ("queued", "on node7"), as a Slurm job's life is worth reading afterwards.
    pub fn place(&mut self, run_id: &str, place: &str) {
        let Some(r) = self.runs.get_mut(run_id) else {
            return;
        };
        if r.place != place {
            r.place = place.to_owned();
            r.bar.set_prefix(format!("{run_id} {place}"));
            self.line(&format!("{run_id} {place}"));
        }
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
    fn run_left(&self, r: &RunLine) -> Option<(f64, bool)> {
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
    fn sweep_eta(&self) -> Option<(f64, bool)> {
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
                // No estimate: what is not running yet, at the running runs' mean speed.
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
                measured = true;
                // Spread over the slots in equal shares.
                if rest > 0.0 {
                    vec![rest / rate / self.slots as f64; self.slots]
                } else {
                    Vec::new()
                }
            }
        };
        if self.runs.is_empty() && durations.is_empty() {
            return None;
        }
        Some((schedule(&busy, durations.len(), |i, _| durations[i]).1, measured))
    }

    fn refresh_sweep(&self) {
        if let Some((eta, measured)) = self.sweep_eta() {
            let note = if measured { "" } else { " (estimate)" };
            self.overall.set_message(format!("sweep ETA {}{note}", secs(eta)));
        }
    }

    /// The latest progress of a running run.
    pub fn progress(&mut self, run_id: &str, p: Progress) {
        let Some(r) = self.runs.get_mut(run_id) else {
            return;
        };
        r.progress = Some(p.clone());
        if let (Some(rate), Some((_, s))) = (p.images_per_sec, &r.plan) {
            self.ratios
                .insert(run_id.to_owned(), rate / s.train_images_per_sec.max(1e-9));
        }
        self.refresh_sweep();
        let Some(r) = self.runs.get(run_id) else { return };
        let eta = self.run_left(r).map(|(t, _)| t);
        r.bar.set_length(p.steps_per_epoch.max(1) as u64);
        let rate = p
            .images_per_sec
            .map_or("- img/s".into(), |v| format!("{v:.0} img/s"));
        if p.epoch > r.epochs {
            // Past its last epoch: the worker writes its samples and ends.
            r.bar.set_position(p.steps_per_epoch.max(1) as u64);
            r.bar
                .set_message(format!("epoch {0}/{0}  {rate}  finishing", r.epochs));
            return;
        }
        r.bar.set_position(p.step_in_epoch.max(0) as u64);
        r.bar.set_message(format!(
            "epoch {}/{}  {rate}  ETA {}",
            p.epoch,
            r.epochs,
            eta.map_or("-".into(), secs)
        ));
    }

    /// A run finished an epoch.
    pub fn epoch(&mut self, run_id: &str, epoch: u32, bpd8: Option<f64>) {
        self.overall.inc(1);
        let images = self
            .runs
            .get(run_id)
            .map_or(0, |r| r.images_per_epoch.max(0) as u64);
        self.remaining.epochs = self.remaining.epochs.saturating_sub(1);
        self.remaining.images = self.remaining.images.saturating_sub(images);
        if let Some(r) = self.runs.get_mut(run_id) {
            if let Some(p) = &mut r.progress {
                p.epoch = epoch + 1;
                p.step_in_epoch = 0;
            }
        }
        self.refresh_sweep();
        if self.mode == Mode::Lines {
            let Some(r) = self.runs.get(run_id) else { return };
            let rate = r.progress.as_ref().and_then(|p| p.images_per_sec);
            eprintln!(
                "{run_id} epoch {epoch}/{}  bpd8 {}  {}  run ETA {}  sweep ETA {}",
                r.epochs,
                bpd8.map_or("-".into(), |v| format!("{v:.4}")),
                rate.map_or("- img/s".into(), |v| format!("{v:.0} img/s")),
                self.run_left(r).map_or("-".into(), |(t, _)| secs(t)),
                self.sweep_eta().map_or("-".into(), |(t, _)| secs(t)),
            );
        }
    }

    /// A run ended; the epochs it will not train leave the sweep's work.
    pub fn finished(&mut self, run_id: &str, status: RunStatus, detail: Option<&str>) {
        if let Some(r) = self.runs.remove(run_id) {
            let trained = r.progress.as_ref().map_or(0, |p| p.epoch.saturating_sub(1));
            if status != RunStatus::Interrupted {
                let skipped = r.epochs.saturating_sub(trained) as u64;
                if status != RunStatus::Completed && skipped > 0 {
                    self.remaining.epochs = self.remaining.epochs.saturating_sub(skipped);
                    self.remaining.images = self
                        .remaining
                        .images
                        .saturating_sub(skipped * r.images_per_epoch.max(0) as u64);
                    self.overall
                        .set_length(self.overall.length().unwrap_or(0).saturating_sub(skipped));
                }
            }
            r.bar.finish_and_clear();
            self.multi.remove(&r.bar);
        }
        let detail = detail.map(|d| format!(": {d}")).unwrap_or_default();
        self.line(&format!("{run_id} {}{detail}", status.as_str()));
        self.refresh_sweep();
    }

    /// A proposed trial that will not train (its configuration is invalid): the proposal's
    /// planned work leaves the sweep, and a line says why.
    pub fn untrained(&mut self, text: &str, epochs: u32, images_per_epoch: i64) {
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
        self.overall
            .set_length(self.overall.length().unwrap_or(0).saturating_sub(epochs).max(1));
        self.line(text);
        self.refresh_sweep();
    }

    pub fn done(&self, interrupted: bool) {
        self.overall.finish();
        if self.mode == Mode::Lines {
            let how = if interrupted { "stopped" } else { "finished" };
            eprintln!("sweep {how} after {}", duration(self.started.elapsed()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunConfig;

    #[test]
    fn durations_read_like_a_clock() {
        assert_eq!(duration(Duration::from_secs(42)), "42s");
        assert_eq!(duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(duration(Duration::from_secs(3720)), "1h02m");
        assert_eq!(duration(Duration::from_secs(3 * 86400)), "3.0 days");
    }

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

    #[test]
    fn the_sweep_eta_comes_from_the_estimate_then_from_measured_speeds() {
        let mut p = SweepProgress::with_mode(Mode::Quiet, 8, 0, Work::default(), 2);
        p.set_estimate(&estimate(4, 2));
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
        p.progress("r0", progress(1, 5, 200.0));
        p.progress("r1", progress(1, 5, 200.0));
        assert!(close(p.sweep_eta(), 17.5, true), "{:?}", p.sweep_eta());
        let r0 = p.runs.get("r0").unwrap();
        assert!(close(p.run_left(r0), 7.5, true));
        // An epoch ends: its images leave the run's ETA.
        p.epoch("r0", 1, Some(7.2));
        let r0 = p.runs.get("r0").unwrap();
        assert!(close(p.run_left(r0), 5.0, true));
        p.finished("r0", RunStatus::Completed, None);
        p.started("r2", "cpu", 2, 1000);
        let r2 = p.runs.get("r2").unwrap();
        assert!(close(p.run_left(r2), 10.0, false), "the estimate, scaled");
    }

    #[test]
    fn without_an_estimate_the_eta_waits_for_a_speed() {
        let work = Work {
            epochs: 4,
            images: 4000,
        };
        let mut p = SweepProgress::with_mode(Mode::Quiet, 4, 0, work, 1);
        p.started("a", "cpu", 2, 1000);
        assert_eq!(p.sweep_eta(), None);
        p.progress("a", progress(1, 0, 100.0));
        // 2,000 images of "a", then 2,000 more queued: 40 s.
        let (eta, _) = p.sweep_eta().unwrap();
        assert!((eta - 40.0).abs() < 1e-9, "{eta}");
    }
}
