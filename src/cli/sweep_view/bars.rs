//! The sweep on a terminal: an overall bar counting epochs with the sweep's ETA, one bar per
//! running run over its current epoch's steps, and the sweep's lines printed above them.

use std::collections::HashMap;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::eta::SweepEta;
use super::{finished_line, rate, started_line};
use crate::format;
use crate::registry::{Progress, RunStatus};
use crate::schedule::{SweepObserver, SweepPlan};

pub struct Bars {
    eta: SweepEta,
    multi: MultiProgress,
    overall: ProgressBar,
    runs: HashMap<String, ProgressBar>,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Bars {
    pub fn new(eta: SweepEta) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = multi.add(ProgressBar::new(1));
        overall.set_style(style("epochs [{bar:30}] {pos}/{len} {msg} ({elapsed})"));
        Self {
            eta,
            multi,
            overall,
            runs: HashMap::new(),
        }
    }

    /// Prints a line above the bars.
    fn line(&self, text: &str) {
        let _ = self.multi.println(text);
    }

    fn refresh_sweep(&self) {
        if let Some((eta, measured)) = self.eta.sweep_eta() {
            let note = if measured { "" } else { " (estimate)" };
            self.overall
                .set_message(format!("sweep ETA {}{note}", format::seconds(eta)));
        }
    }

    /// Shortens the overall bar by epochs that will not be trained.
    fn drop_epochs(&self, epochs: u64) {
        self.overall
            .set_length(self.overall.length().unwrap_or(0).saturating_sub(epochs).max(1));
    }
}

impl SweepObserver for Bars {
    fn note(&mut self, text: &str) {
        self.line(text);
    }

    fn planned(&mut self, plan: &SweepPlan) {
        self.eta.planned(plan);
        self.overall.set_length(plan.total_epochs.max(1));
        self.overall.set_position(plan.done_epochs);
        self.refresh_sweep();
    }

    fn started(&mut self, run_id: &str, place: &str, epochs: u32, images_per_epoch: i64) {
        let bar = self.multi.add(ProgressBar::new(1));
        bar.set_style(style("  {prefix} [{bar:20}] {msg}"));
        bar.set_prefix(format!("{run_id} {place}"));
        let about = self.eta.started(run_id, place, epochs, images_per_epoch);
        bar.set_message(match about {
            Some(t) => format!("starting (about {})", format::seconds(t)),
            None => "starting".into(),
        });
        self.line(&started_line(run_id, place, about));
        self.runs.insert(run_id.to_owned(), bar);
    }

    fn place(&mut self, run_id: &str, place: &str) {
        if self.eta.place(run_id, place) {
            if let Some(bar) = self.runs.get(run_id) {
                bar.set_prefix(format!("{run_id} {place}"));
            }
            self.line(&format!("{run_id} {place}"));
        }
    }

    fn progress(&mut self, run_id: &str, p: &Progress) {
        if !self.eta.progress(run_id, p) {
            return;
        }
        self.refresh_sweep();
        let (Some(r), Some(bar)) = (self.eta.run(run_id), self.runs.get(run_id)) else {
            return;
        };
        let eta = self.eta.run_left(r).map(|(t, _)| t);
        bar.set_length(p.steps_per_epoch.max(1) as u64);
        let rate = rate(p.images_per_sec);
        if p.epoch > r.epochs {
            // Past its last epoch: the worker writes its samples and ends.
            bar.set_position(p.steps_per_epoch.max(1) as u64);
            bar.set_message(format!("epoch {0}/{0}  {rate}  finishing", r.epochs));
            return;
        }
        bar.set_position(p.step_in_epoch.max(0) as u64);
        bar.set_message(format!(
            "epoch {}/{}  {rate}  ETA {}",
            p.epoch,
            r.epochs,
            eta.map_or("-".into(), format::seconds)
        ));
    }

    fn epoch(&mut self, run_id: &str, epoch: u32, _bpd8: Option<f64>) {
        self.overall.inc(1);
        self.eta.epoch(run_id, epoch);
        self.refresh_sweep();
    }

    fn finished(&mut self, run_id: &str, status: RunStatus, detail: Option<&str>) {
        let skipped = self.eta.finished(run_id, status);
        if skipped > 0 {
            self.overall
                .set_length(self.overall.length().unwrap_or(0).saturating_sub(skipped));
        }
        if let Some(bar) = self.runs.remove(run_id) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        self.line(&finished_line(run_id, status, detail));
        self.refresh_sweep();
    }

    fn untrained(&mut self, note: &str, epochs: u32, images_per_epoch: i64) {
        self.eta.untrained(epochs, images_per_epoch);
        self.drop_epochs(u64::from(epochs));
        self.line(note);
        self.refresh_sweep();
    }

    fn done(&mut self, _interrupted: bool) {
        self.overall.finish();
    }
}
