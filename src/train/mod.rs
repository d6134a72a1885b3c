//! The training loop: data order, optimisation, per-epoch evaluation, checkpoints and samples.
//!
//! The trainer knows nothing of registries or journals and draws nothing: whoever runs it passes
//! an [`Observer`] that records (or shows) what happens and answers, between epochs, whether to
//! go on.

pub mod checkpoint;
mod divergence;
mod lr_schedule;
pub mod memory;
mod observer;
mod optim;
pub mod speed;

pub use crate::journal::EpochRecord;
pub use divergence::{Diverged, Divergence};
pub use lr_schedule::learning_rate;
pub use observer::{Next, NoObserver, Observer, Outcome, StepInfo, TrainState};
pub use optim::Adam;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use tch::{nn, Device, Kind, Tensor};

use crate::config::RunConfig;
use crate::data::{Dataset, Split};
use crate::journal::CheckpointRecord;
use crate::metrics;
use crate::model::{ModelSpec, PixelCnn};
use crate::precision::{Autocast, Precision};
use crate::run_dir::RunDir;
use crate::sample::{self, Sampler};

pub struct Trainer {
    pub config: RunConfig,
    pub run: RunDir,
    pub device: Device,
    pub state: TrainState,
    pub vs: nn::VarStore,
    pub model: PixelCnn,
    /// The checkpoint this trainer resumed from, if any.
    pub resumed_from: Option<PathBuf>,
    optim: Adam,
    train: Dataset,
    test: Dataset,
    divergence: Divergence,
    pub sampler: Sampler,
}

impl Trainer {
    /// Validates the config, loads both splits and builds a freshly initialised model.
    pub fn new(config: RunConfig, run: RunDir, data_dir: &Path, device: Device) -> Result<Self> {
        config.validate()?;
        memory::check_fits(&config, device)?;
        crate::host::keep_freed_memory();
        let load = |split, subset| {
            Dataset::load(
                config.dataset,
                split,
                data_dir,
                subset as usize,
                config.channels() as usize,
                config.color_levels,
                device,
            )
        };
        let train = load(Split::Train, config.train_subset)?;
        let test = load(Split::Test, config.test_subset)?;
        let vs = nn::VarStore::new(device);
        let model = PixelCnn::new(&vs.root(), config.model_spec(), config.seed);
        let optim = Adam::new(&vs, config.weight_decay);
        let precision = config.precision.resolve(device);
        Ok(Self {
            divergence: Divergence::new(config.color_levels),
            config,
            run,
            device,
            state: TrainState {
                precision: Some(precision),
                ..TrainState::default()
            },
            vs,
            model,
            resumed_from: None,
            optim,
            train,
            test,
            sampler: Sampler::Cached,
        })
    }

    /// Rebuilds a trainer at the newest checkpoint of its run folder that passes its checksum
    /// (see [`checkpoint::newest_usable`]); starts from scratch when there is none.
    pub fn resume(config: RunConfig, run: RunDir, data_dir: &Path, device: Device) -> Result<Self> {
        let mut trainer = Self::new(config, run, data_dir, device)?;
        match checkpoint::newest_usable(&trainer.run)? {
            Some((path, ckpt)) => {
                // A checkpoint of another run (a swapped checkpoints folder) would continue that
                // run's model under this run's name.
                checkpoint::check_owner(&path, &ckpt, &trainer.run.id, &trainer.config)?;
                let state = ckpt
                    .state
                    .with_context(|| format!("{} has no training state", path.display()))?;
                crate::weights::load_into(&mut trainer.vs, &ckpt.file.tensors, &path)?;
                trainer.optim.load_state(&ckpt.file.tensors, state.global_step)?;
                // The precision it started in, even where `auto` would now resolve otherwise
                // (another machine): a resume takes the steps the run would have taken.
                let precision = state.precision.or(trainer.state.precision);
                trainer.state = TrainState { precision, ..state };
                tracing::info!(checkpoint = %path.display(), epoch = trainer.state.epochs_done, "resuming");
                trainer.resumed_from = Some(path);
            }
            None => tracing::info!("no usable checkpoint; starting from the beginning"),
        }
        crate::precision::warn_if_emulated(trainer.precision(), device);
        Ok(trainer)
    }

    /// The precision this run trains in: its config's, `auto` resolved when the run started
    /// (see [`TrainState::precision`]).
    pub fn precision(&self) -> Precision {
        self.state
            .precision
            .unwrap_or_else(|| self.config.precision.resolve(self.device))
    }

    pub fn spec(&self) -> ModelSpec {
        self.model.spec
    }

    pub fn steps_per_epoch(&self) -> i64 {
        (self.train.len() + self.config.batch_size - 1) / self.config.batch_size
    }

    /// Trains until the configured number of epochs is done, `stop` is raised, or the observer
    /// says to stop.
    pub fn run(&mut self, observer: &mut dyn Observer, stop: &AtomicBool) -> Result<Outcome> {
        while self.state.epochs_done < self.config.epochs {
            if stop.load(Ordering::SeqCst) {
                return Ok(Outcome::Interrupted);
            }
            // An epoch boundary reached before (a resume from an epoch checkpoint) is asked
            // about again: the answer may not have arrived before the worker stopped.
            if self.state.epochs_done > 0 && self.state.step_in_epoch == 0 {
                match observer.next_epoch(self.state.epochs_done, stop)? {
                    Next::Continue => {}
                    Next::Prune(why) => return Ok(Outcome::Pruned(why)),
                    Next::Stop => return Ok(Outcome::Interrupted),
                }
            }
            self.run_epoch(observer, stop)?;
        }
        Ok(Outcome::Completed)
    }

    /// The training order of epoch `epoch` (0-based): a permutation fixed by the seed and epoch,
    /// so that a resumed run sees exactly the batches an uninterrupted one would.
    fn epoch_order(&self, epoch: u32) -> Vec<i64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
            self.config
                .seed
                .wrapping_mul(1_000_003)
                .wrapping_add(epoch as u64),
        );
        let mut order: Vec<i64> = (0..self.train.len()).collect();
        order.shuffle(&mut rng);
        order
    }

    fn run_epoch(&mut self, observer: &mut dyn Observer, stop: &AtomicBool) -> Result<()> {
        let epoch = self.state.epochs_done;
        let steps = self.steps_per_epoch();
        let total_steps = steps * self.config.epochs as i64;
        let order = self.epoch_order(epoch);
        let started = Instant::now();
        let mut lr = self.config.learning_rate;
        let skip = self.state.step_in_epoch as usize;
        for batch in order.chunks(self.config.batch_size as usize).skip(skip) {
            if stop.load(Ordering::SeqCst) {
                observer.before_checkpoint();
                self.save_interrupt_checkpoint(observer)?;
                return Ok(());
            }
            let idx = Tensor::from_slice(batch).to_device(self.device);
            let (x, target, labels) = self.train.batch(&idx);
            let loss = training_loss(&self.model, &x, &labels, &target, self.precision())?;
            let value = loss.double_value(&[]);
            if let Err(diverged) = self.divergence.check(self.state.global_step + 1, value) {
                return Err(diverged.into());
            }
            self.optim.zero_grad();
            loss.backward();
            self.optim.clip_grad_norm(self.config.max_norm);
            lr = learning_rate(
                self.config.lr_schedule,
                self.config.learning_rate,
                self.state.global_step,
                total_steps,
            );
            self.optim.step(lr);
            self.state.global_step += 1;
            self.state.step_in_epoch += 1;
            self.state.epoch_loss_sum += value;
            self.state.epoch_images += batch.len() as i64;
            let rate = (self.state.step_in_epoch - skip as i64) as f64 * self.config.batch_size as f64
                / started.elapsed().as_secs_f64().max(1e-9);
            observer.on_step(&StepInfo {
                step: self.state.global_step,
                loss: value,
                lr,
                epoch: epoch + 1,
                step_in_epoch: self.state.step_in_epoch,
                steps_per_epoch: steps,
                images_per_sec: rate,
            });
        }
        let train_seconds = started.elapsed().as_secs_f64();
        let trained = self.state.epoch_images - skip as i64 * self.config.batch_size;
        let loss = self.state.epoch_loss_sum / steps as f64;
        self.state.step_in_epoch = 0;
        self.state.epoch_loss_sum = 0.0;
        self.state.epoch_images = 0;
        self.finish_epoch(
            epoch,
            loss,
            lr,
            trained.max(0) as f64 / train_seconds,
            started,
            observer,
        )
    }

    /// On a stop request mid-epoch: a checkpoint at the current step (`epoch-0003-step-000120`
    /// continues epoch 4 after 3 finished ones; see [`RunDir::epoch_checkpoints`] for the order).
    fn save_interrupt_checkpoint(&self, observer: &mut dyn Observer) -> Result<()> {
        if self.state.step_in_epoch == 0 {
            return Ok(());
        }
        let path = self
            .run
            .step_checkpoint(self.state.epochs_done, self.state.step_in_epoch);
        let record = self.save_state(&path)?;
        tracing::info!(checkpoint = %path.display(), "interrupted: checkpoint written");
        observer.on_interrupt_checkpoint(&record, &self.state);
        Ok(())
    }

    /// Writes model, optimiser moments and the training position to `path`.
    fn save_state(&self, path: &Path) -> Result<CheckpointRecord> {
        let mut tensors = crate::weights::model_tensors(&self.vs);
        tensors.extend(self.optim.state());
        let sha256 = checkpoint::save(
            path,
            &self.run.id,
            &tensors,
            &self.config,
            &self.spec(),
            &self.state,
        )?;
        Ok(CheckpointRecord {
            file: file_name(path),
            size: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            sha256,
        })
    }

    fn finish_epoch(
        &mut self,
        epoch: u32,
        train_loss: f64,
        lr: f64,
        images_per_sec: f64,
        started: Instant,
        observer: &mut dyn Observer,
    ) -> Result<()> {
        let test = metrics::evaluate(&self.model, &self.test, self.config.batch_size.max(64));
        self.divergence.check_test(epoch + 1, test.nll)?;
        let record = EpochRecord {
            epoch: epoch + 1,
            train_loss,
            test,
            learning_rate: lr,
            images_per_sec,
            seconds: started.elapsed().as_secs_f64(),
        };
        let is_best = self.state.best().is_none_or(|b| test.bpd8 < b.test.bpd8);
        self.state.epochs_done = epoch + 1;
        self.state.history.push(record.clone());
        if is_best {
            self.state.best_epoch = Some(epoch + 1);
        }
        // The checkpoint first: whatever happens while sampling, the epoch is kept.
        observer.before_checkpoint();
        let checkpoint = self.save_checkpoint(epoch + 1, is_best)?;
        tracing::info!(
            epoch = epoch + 1,
            train_loss = format!("{train_loss:.4}"),
            nll = format!("{:.4}", test.nll),
            bpd = format!("{:.4}", test.bpd),
            bpd8 = format!("{:.4}", test.bpd8),
            images_per_sec = format!("{images_per_sec:.1}"),
            "epoch done"
        );
        observer.on_epoch(&record, &checkpoint, is_best);
        match self.write_epoch_samples(epoch + 1) {
            Ok(Some(path)) => observer.on_samples(epoch + 1, &path),
            Ok(None) => {}
            Err(e) => tracing::warn!("epoch {} samples not written: {e:#}", epoch + 1),
        }
        Ok(())
    }

    /// Saves the epoch checkpoint (and `best.safetensors` when it is the best so far), then
    /// removes what it supersedes: epoch checkpoints but the two newest, and mid-epoch ones
    /// older than the new epoch.
    fn save_checkpoint(&self, epoch: u32, is_best: bool) -> Result<CheckpointRecord> {
        let path = self.run.epoch_checkpoint(epoch);
        let record = self.save_state(&path)?;
        if is_best {
            self.save_state(&self.run.best_checkpoint())?;
        }
        let mut epoch_ckpts = 0;
        for (position, old) in self.run.epoch_checkpoints() {
            let superseded = if position.1 == 0 {
                epoch_ckpts += 1;
                epoch_ckpts > 2
            } else {
                position.0 < epoch
            };
            if superseded {
                let _ = std::fs::remove_file(&old);
                let _ = std::fs::remove_file(checkpoint::sidecar(&old));
            }
        }
        Ok(record)
    }

    fn write_epoch_samples(&self, epoch: u32) -> Result<Option<PathBuf>> {
        if self.config.epoch_samples == 0 {
            return Ok(None);
        }
        let labels = sample::sample_labels(self.config.epoch_samples, None, self.train.classes, self.device);
        let (_, _, h, w) = self.train.levels.size4()?;
        // A seed per epoch makes the grids repeatable, also across a resume.
        let seed = self.config.seed.wrapping_mul(31).wrapping_add(epoch as u64);
        let threads = sample::libtorch_threads();
        let levels = sample::sample(&self.model, &labels, (h, w), 1.0, self.sampler, seed, threads);
        let path = self.run.epoch_samples(epoch);
        sample::write_grid(&levels, self.config.color_levels, &path)?;
        Ok(Some(path))
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The loss of one training batch, as every training step takes it: the forward pass under
/// autocast when `precision` asks for it, the cross-entropy on fp32 logits (under autocast the
/// logits are bf16).
pub fn training_loss(
    model: &PixelCnn,
    x: &Tensor,
    labels: &Tensor,
    target: &Tensor,
    precision: Precision,
) -> Result<Tensor> {
    let logits = {
        let _autocast = Autocast::enter(x.device(), precision)?;
        model.forward(x, labels)
    };
    Ok(metrics::batch_loss(&logits.to_kind(Kind::Float), target))
}
