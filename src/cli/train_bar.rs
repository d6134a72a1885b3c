//! The bar `pixelx train` and `pixelx resume` draw over each epoch's steps: an observer of the
//! trainer ([`crate::train::Observer`]), which draws nothing itself.

use indicatif::{ProgressBar, ProgressStyle};

use crate::train::{Observer, StepInfo};

pub struct TrainBar {
    /// The run's epochs, for `epoch 3/25`.
    epochs: u32,
    /// The bar of the epoch being trained, and that epoch.
    bar: Option<(u32, ProgressBar)>,
}

impl TrainBar {
    pub fn new(epochs: u32) -> Self {
        Self { epochs, bar: None }
    }

    /// The bar of `s`'s epoch, made at its first step.
    fn bar(&mut self, s: &StepInfo) -> &ProgressBar {
        if self.bar.as_ref().is_some_and(|(epoch, _)| *epoch != s.epoch) {
            self.bar = None;
        }
        let epochs = self.epochs;
        &self.bar.get_or_insert_with(|| (s.epoch, epoch_bar(s, epochs))).1
    }
}

fn epoch_bar(s: &StepInfo, epochs: u32) -> ProgressBar {
    let bar = ProgressBar::new(s.steps_per_epoch.max(0) as u64);
    bar.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{}/{epochs}", s.epoch));
    // A resumed epoch starts where its checkpoint left it.
    bar.set_position((s.step_in_epoch - 1).max(0) as u64);
    bar
}

impl Observer for TrainBar {
    fn on_step(&mut self, s: &StepInfo) {
        let bar = self.bar(s);
        bar.inc(1);
        bar.set_message(format!("loss {:.4}  {:.0} img/s", s.loss, s.images_per_sec));
        if s.step_in_epoch >= s.steps_per_epoch {
            // The epoch's training is done: evaluation and the checkpoint follow.
            if let Some((_, bar)) = self.bar.take() {
                bar.finish_and_clear();
            }
        }
    }

    /// Before a checkpoint mid-epoch (a stop request) the bar stays where it stopped.
    fn before_checkpoint(&mut self) {
        if let Some((_, bar)) = self.bar.take() {
            bar.abandon();
        }
    }
}
