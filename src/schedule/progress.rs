//! The sweep's progress display. On a terminal: an overall bar counting epochs with the sweep's
//! ETA, and one bar per running run over its current epoch's steps with images/s and the run's
//! ETA. Elsewhere (CI, `nohup`, Slurm logs): one plain line per run per epoch, and one when a run
//! starts or ends. Fed by the coordinator from the journals it ingests.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bars,
    Lines,
    Quiet,
}

/// What the display knows of one run.
struct RunLine {
    bar: ProgressBar,
    place: String,
    epochs: u32,
    images_per_epoch: i64,
    progress: Option<Progress>,
}

/// Work still to do, for ETAs: images of epochs not trained yet.
#[derive(Debug, Clone, Copy, Default)]
pub struct Work {
    pub epochs: u64,
    pub images: u64,
}

pub struct SweepProgress {
    mode: Mode,
    multi: MultiProgress,
    overall: ProgressBar,
    runs: HashMap<String, RunLine>,
    /// Epochs planned and not yet trained, over the whole sweep.
    remaining: Work,
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
            slots: slots.max(1),
            started: Instant::now(),
        }
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

    pub fn started(&mut self, run_id: &str, place: &str, epochs: u32, images_per_epoch: i64) {
        let bar = self.multi.add(ProgressBar::new(1));
        bar.set_style(
            ProgressStyle::with_template("  {prefix} [{bar:20}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{run_id} {place}"));
        bar.set_message("starting");
        self.line(&format!("{run_id} started on {place}"));
        self.runs.insert(
            run_id.to_owned(),
            RunLine {
                bar,
                place: place.to_owned(),
                epochs,
                images_per_epoch,
                progress: None,
            },
        );
    }

    /// Updates where a run stands.
    pub fn place(&mut self, run_id: &str, place: &str) {
        if let Some(r) = self.runs.get_mut(run_id) {
            if r.place != place {
                r.place = place.to_owned();
                r.bar.set_prefix(format!("{run_id} {place}"));
            }
        }
    }

    /// The aggregate speed of the running runs, in images/s.
    fn throughput(&self) -> Option<f64> {
        let rates: Vec<f64> = self
            .runs
            .values()
            .filter_map(|r| r.progress.as_ref()?.images_per_sec)
            .filter(|v| *v > 0.0)
            .collect();
        if rates.is_empty() {
            return None;
        }
        // Idle slots will run at the speed of the busy ones.
        let mean = rates.iter().sum::<f64>() / rates.len() as f64;
        Some(mean * self.slots.min(self.runs.len().max(rates.len())).max(1) as f64)
    }

    /// A run's ETA from its own speed.
    fn run_eta(r: &RunLine) -> Option<Duration> {
        let p = r.progress.as_ref()?;
        let rate = p.images_per_sec.filter(|v| *v > 0.0)?;
        let per_step = r.images_per_epoch as f64 / p.steps_per_epoch.max(1) as f64;
        let steps_left = (r.epochs as i64 - p.epoch as i64 + 1).max(0) * p.steps_per_epoch - p.step_in_epoch;
        Some(Duration::from_secs_f64(
            steps_left.max(0) as f64 * per_step / rate,
        ))
    }

    fn sweep_eta(&self) -> Option<Duration> {
        let rate = self.throughput()?;
        // Images of the epochs in progress count as partly done.
        let in_progress: f64 = self
            .runs
            .values()
            .filter_map(|r| {
                let p = r.progress.as_ref()?;
                Some(p.step_in_epoch as f64 / p.steps_per_epoch.max(1) as f64 * r.images_per_epoch as f64)
            })
            .sum();
        let left = (self.remaining.images as f64 - in_progress).max(0.0);
        Some(Duration::from_secs_f64(left / rate))
    }

    /// The latest progress of a running run.
    pub fn progress(&mut self, run_id: &str, p: Progress) {
        let eta = {
            let Some(r) = self.runs.get_mut(run_id) else {
                return;
            };
            r.progress = Some(p.clone());
            Self::run_eta(r)
        };
        if let Some(sweep) = self.sweep_eta() {
            self.overall.set_message(format!("sweep ETA {}", duration(sweep)));
        }
        let Some(r) = self.runs.get(run_id) else { return };
        r.bar.set_length(p.steps_per_epoch.max(1) as u64);
        r.bar.set_position(p.step_in_epoch.max(0) as u64);
        r.bar.set_message(format!(
            "epoch {}/{}  {}  ETA {}",
            p.epoch,
            r.epochs,
            p.images_per_sec.map_or("-".into(), |v| format!("{v:.0} img/s")),
            eta.map_or("-".into(), duration)
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
        if self.mode == Mode::Lines {
            let Some(r) = self.runs.get(run_id) else { return };
            let rate = r.progress.as_ref().and_then(|p| p.images_per_sec);
            println_plain(&format!(
                "{run_id} epoch {epoch}/{}  bpd8 {}  {}  run ETA {}  sweep ETA {}",
                r.epochs,
                bpd8.map_or("-".into(), |v| format!("{v:.4}")),
                rate.map_or("- img/s".into(), |v| format!("{v:.0} img/s")),
                Self::run_eta(r).map_or("-".into(), duration),
                self.sweep_eta().map_or("-".into(), duration),
            ));
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
    }

    pub fn done(&self, interrupted: bool) {
        self.overall.finish();
        if self.mode == Mode::Lines {
            let how = if interrupted { "stopped" } else { "finished" };
            println_plain(&format!("sweep {how} after {}", duration(self.started.elapsed())));
        }
    }
}

/// A line for logs, on stderr like the bars it replaces.
fn println_plain(text: &str) {
    eprintln!("{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_clock() {
        assert_eq!(duration(Duration::from_secs(42)), "42s");
        assert_eq!(duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(duration(Duration::from_secs(3720)), "1h02m");
        assert_eq!(duration(Duration::from_secs(3 * 86400)), "3.0 days");
    }
}
