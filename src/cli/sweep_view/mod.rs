//! How `pixelx run` shows a sweep: observers of the coordinator's events
//! ([`crate::schedule::SweepObserver`]). On a terminal: an overall bar counting epochs with the
//! sweep's ETA, and one bar per running run over its current epoch's steps with its epoch,
//! images/s and ETA ([`bars`]). Elsewhere (CI, `nohup`, Slurm logs): one plain line per run per
//! epoch, and one when a run starts or ends ([`lines`]). `--quiet`: nothing.

mod bars;
mod eta;
mod lines;

use std::io::IsTerminal;

use crate::estimate::SweepEstimate;
use crate::format;
use crate::schedule::{NoSweepObserver, SweepObserver};

/// The observer for a sweep: bars on a terminal, plain lines elsewhere, nothing when `quiet`.
/// `estimate` gives ETAs before runs report speeds.
pub fn observer(quiet: bool, estimate: Option<&SweepEstimate>) -> Box<dyn SweepObserver> {
    if quiet {
        Box::new(NoSweepObserver)
    } else if std::io::stderr().is_terminal() {
        Box::new(bars::Bars::new(eta::SweepEta::new(estimate)))
    } else {
        Box::new(lines::Lines::new(eta::SweepEta::new(estimate)))
    }
}

/// `r0 started on cpu (about 3m05s)`: the line for a run that started.
fn started_line(run_id: &str, place: &str, about: Option<f64>) -> String {
    match about {
        Some(t) => format!("{run_id} started on {place} (about {})", format::seconds(t)),
        None => format!("{run_id} started on {place}"),
    }
}

/// `r0 failed: exit code 1`: the line for a run that ended.
fn finished_line(run_id: &str, status: crate::registry::RunStatus, detail: Option<&str>) -> String {
    let detail = detail.map(|d| format!(": {d}")).unwrap_or_default();
    format!("{run_id} {}{detail}", status.as_str())
}

/// `123 img/s`, or `- img/s` before a run reports a speed.
fn rate(images_per_sec: Option<f64>) -> String {
    images_per_sec.map_or("- img/s".into(), |v| format!("{v:.0} img/s"))
}
