//! The sweep's progress display: an overall bar and one line per running run, fed from the
//! registry (workers write there; nothing else passes between processes).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::registry::{Registry, RunStatus};

pub struct SweepProgress {
    multi: MultiProgress,
    overall: ProgressBar,
    lines: HashMap<String, ProgressBar>,
    last_refresh: Instant,
    quiet: bool,
}

impl SweepProgress {
    pub fn new(total: usize, skipped: usize, quiet: bool) -> Self {
        let multi = MultiProgress::with_draw_target(if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        });
        let overall = multi.add(ProgressBar::new(total as u64));
        overall.set_style(
            ProgressStyle::with_template("runs [{bar:30}] {pos}/{len} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        overall.set_position(skipped as u64);
        if skipped > 0 {
            overall.set_message(format!("{skipped} already done"));
        }
        Self {
            multi,
            overall,
            lines: HashMap::new(),
            last_refresh: Instant::now(),
            quiet,
        }
    }

    pub fn started(&mut self, run_id: &str, device: &str) {
        let line = self.multi.add(ProgressBar::new_spinner());
        line.set_prefix(format!("{run_id} {device}"));
        line.set_style(
            ProgressStyle::with_template("  {prefix} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        line.set_message("starting");
        self.lines.insert(run_id.to_owned(), line);
    }

    pub fn finished(&mut self, run_id: &str, status: RunStatus) {
        if let Some(line) = self.lines.remove(run_id) {
            line.finish_and_clear();
            self.multi.remove(&line);
        }
        self.overall.inc(1);
        let _ = self.multi.println(format!("  {run_id} {}", status.as_str()));
    }

    /// Updates the per-run lines from the registry, at most once a second.
    pub fn refresh<'a>(&mut self, registry: &Path, running: impl Iterator<Item = &'a str>) {
        if self.quiet || self.last_refresh.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last_refresh = Instant::now();
        let Ok(reg) = Registry::open(registry) else { return };
        for id in running {
            let (Some(line), Ok(Some(row))) = (self.lines.get(id), reg.run(id)) else {
                continue;
            };
            let latest = reg.latest_progress(id).unwrap_or_default();
            line.set_message(format!(
                "epoch {}/{}  step {}  loss {}  {}",
                latest.epochs_done,
                row.config.epochs,
                latest.step,
                latest.loss.map_or("-".into(), |l| format!("{l:.4}")),
                latest
                    .images_per_sec
                    .map_or(String::new(), |v| format!("{v:.0} img/s")),
            ));
        }
    }

    pub fn done(&self) {
        self.overall.finish();
    }
}
