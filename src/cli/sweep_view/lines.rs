//! The sweep as plain lines on stderr, for logs (CI, `nohup`, Slurm): one per run per epoch, one
//! when a run starts, moves or ends, and one when the sweep ends.

use std::time::Instant;

use super::eta::SweepEta;
use super::{finished_line, rate, started_line};
use crate::format;
use crate::registry::{Progress, RunStatus};
use crate::schedule::{SweepObserver, SweepPlan};

pub struct Lines {
    eta: SweepEta,
    /// When the sweep was planned, for its length at the end.
    started: Instant,
}

impl Lines {
    pub fn new(eta: SweepEta) -> Self {
        Self {
            eta,
            started: Instant::now(),
        }
    }
}

impl SweepObserver for Lines {
    fn note(&mut self, text: &str) {
        eprintln!("{text}");
    }

    fn planned(&mut self, plan: &SweepPlan) {
        self.eta.planned(plan);
        self.started = Instant::now();
    }

    fn started(&mut self, run_id: &str, place: &str, epochs: u32, images_per_epoch: i64) {
        let about = self.eta.started(run_id, place, epochs, images_per_epoch);
        eprintln!("{}", started_line(run_id, place, about));
    }

    /// A Slurm job's moves ("queued", "on node7") are worth reading afterwards.
    fn place(&mut self, run_id: &str, place: &str) {
        if self.eta.place(run_id, place) {
            eprintln!("{run_id} {place}");
        }
    }

    fn progress(&mut self, run_id: &str, progress: &Progress) {
        self.eta.progress(run_id, progress);
    }

    fn epoch(&mut self, run_id: &str, epoch: u32, bpd8: Option<f64>) {
        self.eta.epoch(run_id, epoch);
        let Some(r) = self.eta.run(run_id) else { return };
        eprintln!(
            "{run_id} epoch {epoch}/{}  bpd8 {}  {}  run ETA {}  sweep ETA {}",
            r.epochs,
            bpd8.map_or("-".into(), |v| format!("{v:.4}")),
            rate(r.progress.as_ref().and_then(|p| p.images_per_sec)),
            self.eta
                .run_left(r)
                .map_or("-".into(), |(t, _)| format::seconds(t)),
            self.eta
                .sweep_eta()
                .map_or("-".into(), |(t, _)| format::seconds(t)),
        );
    }

    fn finished(&mut self, run_id: &str, status: RunStatus, detail: Option<&str>) {
        self.eta.finished(run_id, status);
        eprintln!("{}", finished_line(run_id, status, detail));
    }

    fn untrained(&mut self, note: &str, epochs: u32, images_per_epoch: i64) {
        self.eta.untrained(epochs, images_per_epoch);
        eprintln!("{note}");
    }

    fn done(&mut self, interrupted: bool) {
        let how = if interrupted { "stopped" } else { "finished" };
        eprintln!("sweep {how} after {}", format::duration(self.started.elapsed()));
    }
}
