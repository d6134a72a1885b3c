//! An estimate in words: the one-line total, how the speeds were measured, and what to cut when
//! a sweep is long for a CPU.

#[cfg(test)]
use super::SpeedReport;
use super::{precision_on, SweepEstimate, CPU_WARNING_SECONDS};
use crate::format::{about, count_rounded};
use crate::precision::Precision;
use crate::slots::SlotKind;

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl SweepEstimate {
    /// `1 CPU slot (2 threads)`, `2 CPU slots (1 thread each)`, `4 CUDA slots`, `16 Slurm jobs
    /// (CPU, 4 threads each)`.
    pub fn slots_text(&self) -> String {
        let cpu: Vec<usize> = self
            .slots
            .iter()
            .filter_map(|s| match s.kind() {
                SlotKind::Cpu { threads } => Some(threads),
                SlotKind::Cuda => None,
            })
            .collect();
        let cuda = self.slots.len() - cpu.len();
        let threads = |t: usize, each: bool| {
            format!(
                "{}{}",
                plural(t, "thread", "threads"),
                if each { " each" } else { "" }
            )
        };
        if self.backend_slurm {
            let what = match cpu.first() {
                Some(&t) => format!("CPU, {}", threads(t, true)),
                None => "GPU".into(),
            };
            return format!(
                "{} at a time ({what})",
                plural(self.slots.len(), "Slurm job", "Slurm jobs")
            );
        }
        match (cpu.len(), cuda) {
            (0, n) => plural(n, "CUDA slot", "CUDA slots"),
            (n, 0) => format!(
                "{} ({})",
                plural(n, "CPU slot", "CPU slots"),
                threads(cpu[0], n > 1)
            ),
            (c, g) => format!("{} ({g} CUDA, {c} CPU)", plural(c + g, "slot", "slots")),
        }
    }

    /// How the speeds were measured, in a few words: `calibrated: 4 architectures in 12 s`.
    fn source_text(&self) -> String {
        let s = &self.speeds;
        let mut parts = Vec::new();
        if s.from_history > 0 {
            parts.push(format!(
                "from history: {} of {}",
                plural(s.from_history, "architecture", "architectures"),
                plural(s.history_runs, "run", "runs")
            ));
        }
        if s.calibrated > 0 {
            parts.push(format!(
                "calibrated: {} in {:.0} s",
                plural(s.calibrated, "architecture", "architectures"),
                s.calibration_seconds.max(1.0)
            ));
        }
        parts.join("; ")
    }

    /// The one-line total: `26 runs, 37.6 M images·epochs, about 31 h on 1 CPU slot (2 threads)
    /// (calibrated: 10 architectures in 12 s)`.
    pub fn total_line(&self) -> String {
        let pending = self.pending().count();
        let done = self.runs.len() - pending;
        if pending == 0 {
            return if self.runs.is_empty() {
                "nothing to train".into()
            } else {
                format!(
                    "nothing to train: all {} are done (--force trains them again)",
                    plural(self.runs.len(), "run", "runs")
                )
            };
        }
        let what = match self.trials {
            // The trials that will train, not the budget: a re-run has some done, and a small
            // space may end the study sooner.
            Some(_) if done > 0 => format!(
                "{} of the base configuration ({done} done)",
                plural(pending, "trial", "trials")
            ),
            Some(_) => format!("{} of the base configuration", plural(pending, "trial", "trials")),
            None if done > 0 => format!("{} to train ({done} done)", plural(pending, "run", "runs")),
            None => plural(pending, "run", "runs"),
        };
        let work = format!(
            "{what}, {} images·epochs",
            count_rounded(self.image_epochs() as f64)
        );
        let Some(total) = self.total_seconds else {
            let why = if self.speeds.skipped {
                "estimate skipped (--no-calibrate)".to_owned()
            } else {
                format!(
                    "no estimate ({})",
                    self.speeds.notes.first().map_or("speeds unknown", String::as_str)
                )
            };
            let known = self.source_text();
            let known = if known.is_empty() {
                String::new()
            } else {
                format!("; {known}")
            };
            return format!("{work}; time {why}{known}");
        };
        let bound = if self.upper_bound { "at most " } else { "" };
        let source = self.source_text();
        let source = if source.is_empty() {
            String::new()
        } else {
            format!(" ({source})")
        };
        format!(
            "{work}, {bound}about {} on {}{source}",
            about(total),
            self.slots_text()
        )
    }

    /// Details for `--dry-run`: how the speeds were measured and what the estimate assumes.
    pub fn notes(&self) -> Vec<String> {
        let mut out = Vec::new();
        let s = &self.speeds;
        if s.calibrated > 0 {
            let batches = match s.calibration_batches {
                Some((lo, hi)) if lo == hi => format!("batches of {lo}"),
                Some((lo, hi)) => format!("batches of {lo}-{hi}"),
                None => "small batches".into(),
            };
            out.push(format!(
                "speeds: {} timed here in {:.1} s (a few training steps each on {batches} images, \
                 scaled per image to the runs' batches; evaluation and a quarter row of samples timed too)",
                plural(s.calibrated, "architecture", "architectures"),
                s.calibration_seconds
            ));
        }
        if s.extrapolated > 0 {
            out.push(format!(
                "speeds: {} of them scaled from the others by parameter count: the calibration \
                 reached its time limit (a busy machine?)",
                s.extrapolated
            ));
        }
        if s.from_history > 0 {
            out.push(format!(
                "speeds: {} from {} completed on the same device and threads",
                plural(s.from_history, "architecture", "architectures"),
                plural(s.history_runs, "run", "runs")
            ));
        }
        if s.skipped && s.missing > 0 {
            out.push(format!(
                "speeds: {} without history, not timed (--no-calibrate)",
                plural(s.missing, "architecture", "architectures")
            ));
        }
        out.extend(self.auto_precision_note());
        out.extend(s.notes.iter().map(|n| format!("note: {n}")));
        if self.backend_slurm && s.calibrated > 0 {
            out.push("note: the estimate assumes the cluster's nodes are like this machine".into());
        }
        if self.upper_bound {
            out.push("note: an upper bound: the pruner stops weak runs early".into());
        }
        out
    }

    /// What `precision = "auto"` is estimated as on each kind of slot, when a pending run has it:
    /// `precision: auto runs are estimated in bf16 on the CPU slots (the precision they will use)`.
    fn auto_precision_note(&self) -> Option<String> {
        if !self.pending().any(|r| r.work.arch.precision == Precision::Auto) {
            return None;
        }
        let mut parts: Vec<String> = Vec::new();
        for (gpu, kind) in [(false, "CPU"), (true, "GPU")] {
            if let Some(slot) = self.slots.iter().find(|s| s.gpu == gpu) {
                let used = precision_on(Precision::Auto, slot.kind());
                parts.push(format!("{} on the {kind} slots", used.as_str()));
            }
        }
        Some(format!(
            "precision: auto runs are estimated in {} (the precision they will use)",
            parts.join(", ")
        ))
    }

    /// For a long sweep on CPU: how long, and concrete ways to cut it with what each saves.
    pub fn cpu_warning(&self) -> Option<String> {
        if !self.too_long_for_cpu() {
            return None;
        }
        let total = self.total_seconds?;
        let mut lines = vec![format!(
            "warning: this sweep needs about {} on CPU (over {}). It runs as asked; to cut it:",
            about(total),
            about(CPU_WARNING_SECONDS)
        )];
        let mut cut = |flag: &str, what: String| lines.push(format!("  {flag:<26} {what}"));
        const SUBSET: i64 = 10_000;
        if self.pending().any(|r| r.work.images_per_epoch > SUBSET) {
            let t = self.total_if(|w| w.images_per_epoch = w.images_per_epoch.min(SUBSET));
            cut(
                "--set train_subset=10000",
                format!(
                    "train on 10,000 images per epoch{}",
                    t.map_or(String::new(), |t| format!(": about {}", about(t)))
                ),
            );
        }
        const EPOCHS: u32 = 3;
        if self.pending().any(|r| r.work.epochs_left > EPOCHS) {
            let t = self.total_if(|w| w.epochs_left = w.epochs_left.min(EPOCHS));
            cut(
                "--set epochs=3",
                format!(
                    "fewer epochs{}",
                    t.map_or(String::new(), |t| format!(": about {}", about(t)))
                ),
            );
        }
        cut(
            "a GPU machine",
            "`devices = \"auto\"` takes every CUDA device there".into(),
        );
        if !self.upper_bound {
            cut(
                "[pruner] kind = \"asha\"",
                "stop the weakest runs after their first epochs".into(),
            );
        }
        Some(lines.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunConfig;
    use crate::estimate::{testing, Speed};

    const SPEED: Speed = Speed {
        train_images_per_sec: 100.0,
        eval_images_per_sec: 1000.0,
        sample_seconds_per_image: 0.0,
        epoch_fixed_seconds: 0.0,
        startup_seconds: 0.0,
    };

    fn config(epochs: u32, train_subset: i64) -> RunConfig {
        RunConfig {
            epochs,
            train_subset,
            test_subset: 1000,
            epoch_samples: 0,
            ..RunConfig::default()
        }
    }

    #[test]
    fn the_total_line_says_runs_work_time_slots_and_source() {
        // 4 runs of 2 epochs of 1,000 images: 22 s each, two at a time.
        let e = testing::estimate(4, 2, &config(2, 1000), SPEED);
        assert_eq!(
            e.total_line(),
            "4 runs, 8.0 k images·epochs, about 44 s on 2 CPU slots (1 thread each) \
             (calibrated: 1 architecture in 3 s)"
        );
        assert!(e.cpu_warning().is_none());
        let mut skipped = e.clone();
        skipped.total_seconds = None;
        skipped.speeds = SpeedReport {
            skipped: true,
            missing: 1,
            ..SpeedReport::default()
        };
        assert_eq!(
            skipped.total_line(),
            "4 runs, 8.0 k images·epochs; time estimate skipped (--no-calibrate)"
        );
        let mut done = e.clone();
        for r in &mut done.runs[..3] {
            r.work.epochs_left = 0;
        }
        assert!(done
            .total_line()
            .starts_with("1 run to train (3 done), 2.0 k images·epochs"));
        let mut pruned = e;
        pruned.upper_bound = true;
        pruned.trials = Some(4);
        assert!(pruned
            .total_line()
            .starts_with("4 trials of the base configuration, 8.0 k images·epochs, at most about 44 s"));
    }

    #[test]
    fn a_long_cpu_sweep_is_warned_about_with_cuts_and_what_they_save() {
        // 26 runs of 25 epochs of 60,000 images at 100 images/s (and 1 s of evaluation): 4.2 h
        // each, one at a time.
        let e = testing::estimate(26, 1, &config(25, 60_000), SPEED);
        let w = e.cpu_warning().expect("a warning");
        assert!(
            w.starts_with("warning: this sweep needs about 4.5 days on CPU"),
            "{w}"
        );
        assert!(
            w.contains("--set train_subset=10000") && w.contains("about 18 h"),
            "{w}"
        );
        assert!(w.contains("--set epochs=3") && w.contains("about 13 h"), "{w}");
        assert!(w.contains("GPU") && w.contains("[pruner] kind = \"asha\""), "{w}");
        // Already small runs get no cut they would not feel.
        let small = testing::estimate(100, 1, &config(2, 5_000), SPEED);
        let w = small.cpu_warning().expect("a warning");
        assert!(!w.contains("train_subset") && !w.contains("epochs=3"), "{w}");
    }
}
