//! The training loop: data order, optimisation, per-epoch evaluation, samples and checkpoints.

pub mod checkpoint;
mod optim;
mod schedule;

pub use optim::Adam;
pub use schedule::learning_rate;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use crate::config::RunConfig;
use crate::data::{Dataset, Split};
use crate::metrics::{self, EvalMetrics};
use crate::model::{ModelSpec, PixelCnn};
use crate::precision::{Autocast, Precision};
use crate::run_dir::RunDir;
use crate::sample::{self, Sampler};

/// What one finished epoch measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: u32,
    pub train_loss: f64,
    pub test: EvalMetrics,
    pub learning_rate: f64,
    pub images_per_sec: f64,
    pub seconds: f64,
}

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
}

impl TrainState {
    pub fn best(&self) -> Option<&EpochRecord> {
        self.best_epoch
            .and_then(|e| self.history.iter().find(|r| r.epoch == e))
    }
}

/// The loss became NaN or infinite: the run diverged and is stopped.
#[derive(Debug, thiserror::Error)]
#[error("diverged: loss {loss} at step {step}")]
pub struct Diverged {
    pub step: i64,
    pub loss: f64,
}

/// Hooks for whoever records a run (the registry, a progress display).
pub trait Observer {
    fn on_step(&mut self, _step: i64, _loss: f64, _lr: f64) {}
    /// Called just before a checkpoint is written: anything the checkpoint will claim as done
    /// must be durable by then, or a crash right after would lose it for good.
    fn before_checkpoint(&mut self) {}
    fn on_epoch(
        &mut self,
        _record: &EpochRecord,
        _checkpoint: &Path,
        _samples: Option<&Path>,
        _is_best: bool,
    ) {
    }
}

/// Observes nothing.
pub struct NoObserver;
impl Observer for NoObserver {}

/// How a call to [`Trainer::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    /// Stopped between steps on request; the latest checkpoint is current.
    Interrupted,
}

pub struct Trainer {
    pub config: RunConfig,
    pub run: RunDir,
    pub device: Device,
    pub state: TrainState,
    pub vs: nn::VarStore,
    pub model: PixelCnn,
    optim: Adam,
    train: Dataset,
    test: Dataset,
    pub sampler: Sampler,
    pub show_progress: bool,
}

impl Trainer {
    /// Validates the config, loads both splits and builds a freshly initialised model.
    pub fn new(config: RunConfig, run: RunDir, data_dir: &Path, device: Device) -> Result<Self> {
        config.validate()?;
        let load = |split, subset| {
            Dataset::load(
                &config.dataset,
                split,
                data_dir,
                subset as usize,
                config.channels() as usize,
                config.color_levels,
                device,
            )
        };
        if config.precision == Precision::Bf16 && device == Device::Cpu {
            tracing::warn!("bf16 on CPU: most CPUs emulate it, so expect it to be slower than fp32");
        }
        let train = load(Split::Train, config.train_subset)?;
        let test = load(Split::Test, config.test_subset)?;
        let vs = nn::VarStore::new(device);
        let model = PixelCnn::new(&vs.root(), config.model_spec(train.classes), config.seed);
        let optim = Adam::new(&vs, config.weight_decay);
        Ok(Self {
            config,
            run,
            device,
            state: TrainState::default(),
            vs,
            model,
            optim,
            train,
            test,
            sampler: Sampler::Cached,
            show_progress: false,
        })
    }

    /// Rebuilds a trainer at the newest intact epoch checkpoint of its run folder. A checkpoint
    /// that fails its checksum or cannot be parsed is skipped with a warning (the previous one is
    /// used); an intact checkpoint of a different architecture is an error.
    pub fn resume(config: RunConfig, run: RunDir, data_dir: &Path, device: Device) -> Result<Self> {
        let mut trainer = Self::new(config, run, data_dir, device)?;
        for path in trainer.run.epoch_checkpoints() {
            let ckpt = match checkpoint::load(&path) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("skipping damaged checkpoint {}: {e:#}", path.display());
                    continue;
                }
            };
            let state = ckpt
                .state
                .with_context(|| format!("{} has no training state", path.display()))?;
            crate::weights::load_into(&mut trainer.vs, &ckpt.file.tensors, &path)?;
            trainer.optim.load_state(&ckpt.file.tensors, state.global_step)?;
            trainer.state = state;
            tracing::info!(checkpoint = %path.display(), epoch = trainer.state.epochs_done, "resuming");
            return Ok(trainer);
        }
        tracing::info!("no usable checkpoint; starting from the beginning");
        Ok(trainer)
    }

    pub fn spec(&self) -> ModelSpec {
        self.model.spec
    }

    fn steps_per_epoch(&self) -> i64 {
        (self.train.len() + self.config.batch_size - 1) / self.config.batch_size
    }

    /// Trains until the configured number of epochs is done or `stop` is raised.
    pub fn run(&mut self, observer: &mut dyn Observer, stop: &AtomicBool) -> Result<Outcome> {
        while self.state.epochs_done < self.config.epochs {
            if stop.load(Ordering::SeqCst) {
                return Ok(Outcome::Interrupted);
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
        let bar = self.progress_bar(epoch, steps);
        bar.set_position(self.state.step_in_epoch as u64);
        let started = Instant::now();
        let mut lr = self.config.learning_rate;
        let skip = self.state.step_in_epoch as usize;
        for batch in order.chunks(self.config.batch_size as usize).skip(skip) {
            if stop.load(Ordering::SeqCst) {
                bar.abandon();
                observer.before_checkpoint();
                self.save_interrupt_checkpoint()?;
                return Ok(());
            }
            let idx = Tensor::from_slice(batch).to_device(self.device);
            let (x, target, labels) = self.train.batch(&idx);
            let loss = training_loss(&self.model, &x, &labels, &target, self.config.precision)?;
            let value = loss.double_value(&[]);
            if !value.is_finite() {
                bar.abandon();
                return Err(Diverged {
                    step: self.state.global_step,
                    loss: value,
                }
                .into());
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
            observer.on_step(self.state.global_step, value, lr);
            bar.inc(1);
            let rate = (self.state.step_in_epoch - skip as i64) as f64 * self.config.batch_size as f64
                / started.elapsed().as_secs_f64();
            bar.set_message(format!("loss {value:.4}  {rate:.0} img/s"));
        }
        let train_seconds = started.elapsed().as_secs_f64();
        bar.finish_and_clear();
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

    /// On a stop request mid-epoch: a checkpoint at the current step, named so it sorts after
    /// the epoch it continues (`epoch-0003-step-000120` comes after `epoch-0003`).
    fn save_interrupt_checkpoint(&self) -> Result<()> {
        if self.state.step_in_epoch == 0 {
            return Ok(());
        }
        let mut tensors = crate::weights::model_tensors(&self.vs);
        tensors.extend(self.optim.state());
        let name = format!(
            "epoch-{:04}-step-{:06}.safetensors",
            self.state.epochs_done, self.state.step_in_epoch
        );
        let path = self.run.checkpoints_dir().join(name);
        checkpoint::save(&path, &tensors, &self.config, &self.spec(), &self.state)?;
        tracing::info!(checkpoint = %path.display(), "interrupted: checkpoint written");
        Ok(())
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
        let samples = self.write_epoch_samples(epoch + 1)?;
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
        observer.before_checkpoint();
        let path = self.save_checkpoint(epoch + 1, is_best)?;
        append_jsonl(&self.run.metrics_path(), &record)?;
        tracing::info!(
            epoch = epoch + 1,
            train_loss = format!("{train_loss:.4}"),
            nll = format!("{:.4}", test.nll),
            bpd = format!("{:.4}", test.bpd),
            bpd8 = format!("{:.4}", test.bpd8),
            images_per_sec = format!("{images_per_sec:.1}"),
            "epoch done"
        );
        observer.on_epoch(&record, &path, samples.as_deref(), is_best);
        Ok(())
    }

    /// Saves the epoch checkpoint (and `best.safetensors` when it is the best so far), then
    /// removes epoch checkpoints older than the previous one.
    fn save_checkpoint(&self, epoch: u32, is_best: bool) -> Result<PathBuf> {
        let mut tensors = crate::weights::model_tensors(&self.vs);
        tensors.extend(self.optim.state());
        let path = self.run.epoch_checkpoint(epoch);
        checkpoint::save(&path, &tensors, &self.config, &self.spec(), &self.state)?;
        if is_best {
            checkpoint::save(
                &self.run.best_checkpoint(),
                &tensors,
                &self.config,
                &self.spec(),
                &self.state,
            )?;
        }
        for old in self.run.epoch_checkpoints().into_iter().skip(2) {
            let _ = std::fs::remove_file(&old);
            let _ = std::fs::remove_file(checkpoint::sidecar(&old));
        }
        Ok(path)
    }

    fn write_epoch_samples(&self, epoch: u32) -> Result<Option<PathBuf>> {
        if self.config.epoch_samples == 0 {
            return Ok(None);
        }
        let labels = sample::sample_labels(self.config.epoch_samples, None, self.train.classes, self.device);
        let (_, _, h, w) = self.train.levels.size4()?;
        // A seed per epoch makes the grids repeatable, also across a resume.
        let seed = self.config.seed.wrapping_mul(31).wrapping_add(epoch as u64);
        let levels = sample::sample(&self.model, &labels, h, w, 1.0, self.sampler, seed);
        let path = self.run.epoch_samples(epoch);
        sample::write_grid(&levels, self.config.color_levels, &path)?;
        Ok(Some(path))
    }

    fn progress_bar(&self, epoch: u32, steps: i64) -> ProgressBar {
        if !self.show_progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({eta} left)")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, self.config.epochs));
        bar
    }
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

fn append_jsonl<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(f, "{}", serde_json::to_string(value)?)?;
    Ok(())
}
