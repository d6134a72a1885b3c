//! What the trainer tells whoever runs it, and what it is told back: its state, each step, each
//! epoch's outcome, and whether to go on.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::journal::{CheckpointRecord, EpochRecord};
use crate::precision::Precision;

/// Where training stands: everything besides tensors that an exact resume needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub epochs_done: u32,
    pub global_step: i64,
    /// Batches of the unfinished epoch already trained (non-zero only in an interrupt checkpoint).
    #[serde(default)]
    pub step_in_epoch: i64,
    /// Sum of those batches' losses and their image count, so the epoch's mean comes out exact.
    #[serde(default)]
    pub epoch_loss_sum: f64,
    #[serde(default)]
    pub epoch_images: i64,
    pub history: Vec<EpochRecord>,
    /// Epoch (1-based) with the lowest test `bpd8` so far.
    pub best_epoch: Option<u32>,
    /// The precision the run trains in: its config's, with `auto` resolved for the device when
    /// the run started, and kept from then on so that a resume takes the same steps. `None` in
    /// checkpoints from before it was recorded (their runs used their config's fp32 or bf16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<Precision>,
}

impl TrainState {
    pub fn best(&self) -> Option<&EpochRecord> {
        self.best_epoch
            .and_then(|e| self.history.iter().find(|r| r.epoch == e))
    }
}

/// One optimiser step, as an observer sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    pub step: i64,
    pub loss: f64,
    pub lr: f64,
    /// The epoch being trained, 1-based.
    pub epoch: u32,
    pub step_in_epoch: i64,
    pub steps_per_epoch: i64,
    /// Training images per second over this epoch so far.
    pub images_per_sec: f64,
}

/// What to do after an epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Continue,
    /// Stop early: the run is pruned (the detail says by which rule and why).
    Prune(String),
    /// Stop now, resumable (a stop request arrived while waiting).
    Stop,
}

/// Hooks for whoever records a run (its journal, a progress display).
pub trait Observer {
    fn on_step(&mut self, _step: &StepInfo) {}
    /// Called just before a checkpoint is written: anything the checkpoint will claim as done
    /// must be durable by then, or a crash right after would lose it for good.
    fn before_checkpoint(&mut self) {}
    /// An epoch finished; its checkpoint is on disk.
    fn on_epoch(&mut self, _record: &EpochRecord, _checkpoint: &CheckpointRecord, _is_best: bool) {}
    /// The epoch's sample grid was written.
    fn on_samples(&mut self, _epoch: u32, _path: &Path) {}
    /// A mid-epoch checkpoint was written on a stop request.
    fn on_interrupt_checkpoint(&mut self, _checkpoint: &CheckpointRecord, _state: &TrainState) {}
    /// Asked after every epoch but the last: whether to train the next one. May wait (for a
    /// pruner's decision), watching `stop`.
    fn next_epoch(&mut self, _epochs_done: u32, _stop: &AtomicBool) -> Result<Next> {
        Ok(Next::Continue)
    }
}

/// Observes nothing.
pub struct NoObserver;
impl Observer for NoObserver {}

/// How a call to [`Trainer::run`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    /// Stopped between steps on request; the latest checkpoint is current.
    Interrupted,
    /// Stopped early by a pruner, at an epoch boundary.
    Pruned(String),
}
