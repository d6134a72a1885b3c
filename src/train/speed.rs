//! Timing the trainer's step on synthetic data: what `just bench training` reports and what the
//! estimator calibrates with, so both measure exactly the work a run does per batch.

use std::time::Instant;

use anyhow::Result;
use tch::{nn, Device, Kind, Tensor};

use super::{training_loss, Adam};
use crate::model::{ModelSpec, PixelCnn};
use crate::precision::Precision;

/// A freshly initialised model with one batch of random images, ready to take training steps.
pub struct StepTimer {
    // Owns the variables the model and the optimiser point into.
    _vs: nn::VarStore,
    model: PixelCnn,
    adam: Adam,
    x: Tensor,
    levels: Tensor,
    labels: Tensor,
    precision: Precision,
    device: Device,
}

impl StepTimer {
    /// A model of `spec` on `device` and a batch of `batch` random `side × side` images.
    pub fn new(spec: ModelSpec, side: i64, batch: i64, device: Device, precision: Precision) -> Self {
        let vs = nn::VarStore::new(device);
        let model = PixelCnn::new(&vs.root(), spec, 0);
        let adam = Adam::new(&vs, 1e-4);
        let (x, levels, labels) = batch_of(spec, side, batch, device);
        Self {
            _vs: vs,
            model,
            adam,
            x,
            levels,
            labels,
            precision,
            device,
        }
    }

    /// Runs the forward pass on channels-last activations or not (a benchmark lever; the
    /// model's default is channels-last on CPU).
    pub fn channels_last(mut self, on: bool) -> Self {
        self.model.channels_last = on;
        self
    }

    /// Runs the horizontal stacks' masked convolutions cropped to the taps their masks keep (the
    /// default on CPU), or over the full kernels as the reference does (a benchmark lever).
    pub fn cropped(mut self, on: bool) -> Self {
        self.model.set_cropped(on);
        self
    }

    pub fn model(&self) -> &PixelCnn {
        &self.model
    }

    pub fn batch(&self) -> i64 {
        self.x.size()[0]
    }

    /// One step as the trainer takes it: loss under the run's precision, read back (the trainer
    /// reads every step's loss, which also bounds asynchronous CUDA work), backward, clipping,
    /// Adam.
    pub fn step(&mut self) -> Result<()> {
        let loss = training_loss(&self.model, &self.x, &self.labels, &self.levels, self.precision)?;
        let _ = loss.double_value(&[]);
        self.adam.zero_grad();
        loss.backward();
        self.adam.clip_grad_norm(1.0);
        self.adam.step(1e-4);
        Ok(())
    }

    /// Seconds that `steps` steps take.
    pub fn time_steps(&mut self, steps: usize) -> Result<f64> {
        self.sync();
        let start = Instant::now();
        for _ in 0..steps {
            self.step()?;
        }
        self.sync();
        Ok(start.elapsed().as_secs_f64())
    }

    /// Training images/s over `steps` steps after `warmup` untimed ones.
    pub fn images_per_sec(&mut self, warmup: usize, steps: usize) -> Result<f64> {
        for _ in 0..warmup {
            self.step()?;
        }
        let seconds = self.time_steps(steps)?;
        Ok((steps as i64 * self.batch()) as f64 / seconds.max(1e-9))
    }

    /// Seconds of one forward pass without gradients over `batch` images: evaluation's work.
    pub fn time_forward(&self, batch: i64, side: i64) -> f64 {
        let (x, _, labels) = batch_of(self.model.spec, side, batch, self.device);
        self.sync();
        let start = Instant::now();
        tch::no_grad(|| {
            let _ = self.model.forward(&x, &labels).sum(Kind::Float).double_value(&[]);
        });
        start.elapsed().as_secs_f64()
    }

    fn sync(&self) {
        if let Device::Cuda(n) = self.device {
            tch::Cuda::synchronize(n as i64);
        }
    }
}

/// Images `[N, C, side, side]` (as the trainer feeds them), their levels and labels.
fn batch_of(spec: ModelSpec, side: i64, batch: i64, device: Device) -> (Tensor, Tensor, Tensor) {
    let levels = Tensor::randint(
        spec.levels,
        [batch, spec.channels, side, side],
        (Kind::Int64, device),
    );
    let x = levels.to_kind(Kind::Float) / (spec.levels - 1) as f64;
    let labels = Tensor::randint(spec.classes, [batch], (Kind::Int64, device));
    (x, levels, labels)
}
