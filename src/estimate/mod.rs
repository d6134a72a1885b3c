//! What a sweep costs, before and while it runs: per run its parameters, images and epochs and an
//! estimated time on the slots the scheduler would use; for the sweep the time until the last
//! slot frees.
//!
//! The pure part ([`Speed::run_seconds`], with [`crate::slots::assign`]) turns work and speeds
//! into times: runs go, in order, to the slot that frees first, which is how the local backend
//! fills its slots (and how Slurm fills `max_jobs`). Speeds are measured per architecture and kind of slot: from the
//! registry's history of completed runs of the same architecture, batch, precision, device kind
//! and threads ([`history`]) when there is one, else by timing a few real training steps, a
//! forward pass and a few sampled pixels of each distinct architecture ([`calibrate`]). The
//! precision is the one a run uses on the slot ([`Arch::on`]): a planned `auto` run on a CPU
//! with native bf16 is estimated, and matched against history, as bf16.

pub mod calibrate;
pub mod history;
mod plan;
mod text;

use crate::config::RunConfig;
use crate::model::ModelSpec;
use crate::precision::Precision;
use crate::slots::{assign, Slot, SlotKind};
pub use plan::{estimate, EstimateOptions};

/// Above this much time on CPU slots, `pixelx run` says how to cut the sweep.
pub const CPU_WARNING_SECONDS: f64 = 2.0 * 3600.0;

/// Seconds from a worker's start to its first step: the process, libtorch, the dataset, the
/// model. Measured 0.3–0.4 s on the 2-core CPU machine for MNIST, from launch to the first
/// step, once libtorch's CUDA backend was no longer linked into every process (0.11 s more
/// before; the 1–1.5 s this said earlier came from an older version); CUDA adds its backend and
/// context.
const CPU_STARTUP_SECONDS: f64 = 0.5;
const CUDA_STARTUP_SECONDS: f64 = 6.0;
/// Checkpoints are written (and synced) at about this rate; an epoch writes its checkpoint and,
/// while the run improves, `best.safetensors` too.
const CHECKPOINT_BYTES_PER_SEC: f64 = 300e6;

/// Seconds from a worker's start to its first step on a kind of slot.
fn startup_seconds(kind: SlotKind) -> f64 {
    match kind {
        SlotKind::Cpu { .. } => CPU_STARTUP_SECONDS,
        SlotKind::Cuda => CUDA_STARTUP_SECONDS,
    }
}

/// Everything of a run's configuration its speed depends on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arch {
    pub spec: ModelSpec,
    /// Image side in pixels.
    pub side: i64,
    pub batch: i64,
    pub precision: Precision,
}

impl Arch {
    /// The architecture of `config`, its precision as written (`auto` unresolved).
    pub fn of(config: &RunConfig) -> Self {
        Self {
            spec: config.model_spec(),
            side: config.dataset.side(),
            batch: config.batch_size,
            precision: config.precision,
        }
    }

    /// This architecture as a run trains it on a kind of slot: `auto` resolved to the precision
    /// it will use there (see [`precision_on`]). Speeds are measured and looked up this way.
    pub fn on(self, kind: SlotKind) -> Self {
        Self {
            precision: precision_on(self.precision, kind),
            ..self
        }
    }
}

/// The precision a run of `precision` trains in on a kind of slot: a CPU slot is this machine's
/// CPU (Slurm nodes are taken as alike), a GPU slot the first GPU here. Where there is no GPU
/// here to ask, `auto` counts as fp32, as it resolves on a device it cannot read.
pub fn precision_on(precision: Precision, kind: SlotKind) -> Precision {
    let device = match kind {
        SlotKind::Cpu { .. } => tch::Device::Cpu,
        SlotKind::Cuda => tch::Device::Cuda(0),
    };
    precision.resolve(device)
}

/// The work of one run still to do.
#[derive(Debug, Clone, PartialEq)]
pub struct RunWork {
    /// The run's id; `None` for trials an adaptive search has yet to propose.
    pub id: Option<String>,
    pub arch: Arch,
    pub params: i64,
    pub images_per_epoch: i64,
    pub epochs: u32,
    /// Epochs not trained yet (0 for a run that is done).
    pub epochs_left: u32,
    /// Images evaluated after every epoch.
    pub test_images: i64,
    /// Images of every epoch's sample grid.
    pub epoch_samples: i64,
}

impl RunWork {
    pub fn of(id: Option<String>, config: &RunConfig, epochs_done: u32) -> Self {
        let spec = config.model_spec();
        let test_images = match config.test_subset {
            0 => config.dataset.test_images(),
            n => n.min(config.dataset.test_images()),
        };
        Self {
            id,
            arch: Arch::of(config),
            params: spec.parameter_count(),
            images_per_epoch: config.images_per_epoch(),
            epochs: config.epochs,
            epochs_left: config.epochs.saturating_sub(epochs_done),
            test_images,
            epoch_samples: config.epoch_samples,
        }
    }

    /// Training images still to go through, counting each epoch.
    pub fn image_epochs(&self) -> u64 {
        self.images_per_epoch.max(0) as u64 * self.epochs_left as u64
    }
}

/// How fast one architecture trains on one kind of slot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Speed {
    pub train_images_per_sec: f64,
    pub eval_images_per_sec: f64,
    /// Seconds per image of the epoch's sample grid (cached sampler).
    pub sample_seconds_per_image: f64,
    /// Seconds per epoch besides training, evaluation and samples: the checkpoint.
    pub epoch_fixed_seconds: f64,
    /// Seconds from a worker's start to its first step.
    pub startup_seconds: f64,
}

impl Speed {
    /// Seconds of one epoch besides its training steps: evaluation, samples, checkpoint.
    pub fn epoch_overhead(&self, w: &RunWork) -> f64 {
        w.test_images as f64 / self.eval_images_per_sec.max(1e-9)
            + w.epoch_samples as f64 * self.sample_seconds_per_image
            + self.epoch_fixed_seconds
    }

    /// Seconds of one whole epoch.
    pub fn epoch_seconds(&self, w: &RunWork) -> f64 {
        w.images_per_epoch as f64 / self.train_images_per_sec.max(1e-9) + self.epoch_overhead(w)
    }

    /// Seconds the run still needs, its worker's start included.
    pub fn run_seconds(&self, w: &RunWork) -> f64 {
        if w.epochs_left == 0 {
            return 0.0;
        }
        self.startup_seconds + w.epochs_left as f64 * self.epoch_seconds(w)
    }

    /// The same speed `factor` times faster (a measured correction).
    pub fn scaled(&self, factor: f64) -> Self {
        let f = if factor.is_finite() && factor > 0.0 {
            factor
        } else {
            1.0
        };
        Self {
            train_images_per_sec: self.train_images_per_sec * f,
            eval_images_per_sec: self.eval_images_per_sec * f,
            sample_seconds_per_image: self.sample_seconds_per_image / f,
            epoch_fixed_seconds: self.epoch_fixed_seconds / f,
            startup_seconds: self.startup_seconds,
        }
    }

    /// Bytes an epoch's checkpoint writes: weights and Adam's two moments, twice while the run
    /// improves (the epoch's and `best.safetensors`).
    fn checkpoint_seconds(params: i64) -> f64 {
        (params.max(0) as f64 * 4.0 * 3.0 * 2.0) / CHECKPOINT_BYTES_PER_SEC
    }
}

/// Where a speed came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Source {
    /// Completed runs in the registry.
    History { runs: usize },
    /// Timed here, on batches of `batch` images (per image, scaled to the run's batch).
    Calibrated { batch: i64, steps: usize },
}

/// A speed for an (architecture, slot kind) pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub arch: Arch,
    pub kind: SlotKind,
    pub speed: Speed,
    pub source: Source,
}

/// Speeds known so far.
#[derive(Debug, Clone, Default)]
pub struct Speeds {
    pub entries: Vec<Measured>,
}

impl Speeds {
    /// The speed of `arch` on `kind`, `auto` taken as the precision it resolves to there.
    pub fn get(&self, arch: &Arch, kind: SlotKind) -> Option<&Measured> {
        let arch = arch.on(kind);
        self.entries.iter().find(|m| m.arch == arch && m.kind == kind)
    }

    pub fn insert(&mut self, m: Measured) {
        if self.get(&m.arch, m.kind).is_none() {
            self.entries.push(Measured {
                arch: m.arch.on(m.kind),
                ..m
            });
        }
    }
}

/// One run of an estimate: its work, and its time on the slot the schedule gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEstimate {
    pub work: RunWork,
    /// The speed of its architecture on its slot, when known.
    pub speed: Option<Speed>,
    pub seconds: Option<f64>,
}

/// How the speeds of an estimate were obtained.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpeedReport {
    /// Distinct architectures timed here, and how long the timing took.
    pub calibrated: usize,
    pub calibration_seconds: f64,
    /// Of those, how many were scaled from the others instead (the calibration ran out of time).
    pub extrapolated: usize,
    /// Batch sizes the calibration timed (smallest, largest).
    pub calibration_batches: Option<(i64, i64)>,
    /// Architectures whose speed came from completed runs, and how many runs.
    pub from_history: usize,
    pub history_runs: usize,
    /// Calibration was asked not to run.
    pub skipped: bool,
    /// (architecture, slot kind) pairs left without a speed.
    pub missing: usize,
    /// Why some could not be measured (no GPU here, an error).
    pub notes: Vec<String>,
}

/// The estimate of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepEstimate {
    pub experiment: String,
    /// Every run of the sweep in order (done ones with nothing left), or the trials of an
    /// adaptive search at the base configuration.
    pub runs: Vec<RunEstimate>,
    pub slots: Vec<Slot>,
    pub backend_slurm: bool,
    /// An adaptive search's trial budget.
    pub trials: Option<usize>,
    /// A pruner will stop runs early: the time is an upper bound.
    pub upper_bound: bool,
    /// Seconds until the last slot frees; `None` when some run has no speed.
    pub total_seconds: Option<f64>,
    pub speeds: SpeedReport,
}

impl SweepEstimate {
    /// Runs with work left.
    pub fn pending(&self) -> impl Iterator<Item = &RunEstimate> {
        self.runs.iter().filter(|r| r.work.epochs_left > 0)
    }

    pub fn image_epochs(&self) -> u64 {
        self.pending().map(|r| r.work.image_epochs()).sum()
    }

    /// The estimate of run `id`.
    pub fn run(&self, id: &str) -> Option<&RunEstimate> {
        self.runs.iter().find(|r| r.work.id.as_deref() == Some(id))
    }

    /// The estimate of a trial not proposed yet (an adaptive search's base configuration).
    pub fn next_trial(&self) -> Option<&RunEstimate> {
        self.runs.iter().find(|r| r.work.id.is_none())
    }

    /// Trials of an adaptive search still to be proposed.
    pub fn trials_to_propose(&self) -> usize {
        self.runs.iter().filter(|r| r.work.id.is_none()).count()
    }

    /// Whether any slot is a CPU and the sweep takes longer than [`CPU_WARNING_SECONDS`].
    pub fn too_long_for_cpu(&self) -> bool {
        self.slots.iter().any(|s| !s.gpu) && self.total_seconds.is_some_and(|t| t > CPU_WARNING_SECONDS)
    }

    /// The total with every pending run's work changed by `f`, at the same speeds: what a cut
    /// would save. `None` when some run has no speed.
    pub fn total_if(&self, f: impl Fn(&mut RunWork)) -> Option<f64> {
        let pending: Vec<(RunWork, Speed)> = self
            .pending()
            .map(|r| {
                let mut w = r.work.clone();
                f(&mut w);
                Some((w, r.speed?))
            })
            .collect::<Option<_>>()?;
        let busy = vec![0.0; self.slots.len()];
        Some(
            assign(&busy, pending.len(), |i, _| {
                pending[i].1.run_seconds(&pending[i].0)
            })
            .1,
        )
    }
}

/// Estimates made up for tests of what reads them.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// `n` runs of `config` at `speed` on `slots` CPU slots of one thread, nothing measured yet.
    pub fn estimate(n: usize, slots: usize, config: &RunConfig, speed: Speed) -> SweepEstimate {
        let runs: Vec<RunEstimate> = (0..n)
            .map(|i| {
                let work = RunWork::of(Some(format!("r{i}")), config, 0);
                RunEstimate {
                    seconds: Some(speed.run_seconds(&work)),
                    speed: Some(speed),
                    work,
                }
            })
            .collect();
        let slot = Slot {
            device: "cpu".into(),
            threads: 1,
            gpu: false,
        };
        let (_, total) = assign(&vec![0.0; slots], n, |i, _| runs[i].seconds.unwrap_or(0.0));
        SweepEstimate {
            experiment: "e".into(),
            runs,
            slots: vec![slot; slots],
            backend_slurm: false,
            trials: None,
            upper_bound: false,
            total_seconds: Some(total),
            speeds: SpeedReport {
                calibrated: 1,
                calibration_seconds: 2.6,
                calibration_batches: Some((8, 8)),
                ..SpeedReport::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(epochs: u32, images: i64) -> RunWork {
        let config = RunConfig {
            epochs,
            train_subset: images,
            test_subset: 1000,
            epoch_samples: 10,
            ..RunConfig::default()
        };
        RunWork::of(Some("r".into()), &config, 0)
    }

    const SPEED: Speed = Speed {
        train_images_per_sec: 100.0,
        eval_images_per_sec: 500.0,
        sample_seconds_per_image: 0.1,
        epoch_fixed_seconds: 1.0,
        startup_seconds: 2.0,
    };

    #[test]
    fn a_run_costs_startup_and_its_epochs() {
        let w = work(3, 1000);
        assert_eq!(
            (w.images_per_epoch, w.test_images, w.image_epochs()),
            (1000, 1000, 3000)
        );
        // Per epoch: 10 s of training, 2 s of evaluation, 1 s of samples, 1 s of checkpoint.
        assert!((SPEED.epoch_seconds(&w) - 14.0).abs() < 1e-9);
        assert!((SPEED.run_seconds(&w) - 44.0).abs() < 1e-9);
        let done = RunWork::of(None, &RunConfig::default(), 25);
        assert_eq!(SPEED.run_seconds(&done), 0.0);
        let twice = SPEED.scaled(2.0);
        assert!((twice.epoch_seconds(&w) - 7.0).abs() < 1e-9);
    }

    /// A planned `auto` run is estimated at the precision it will use on the slot: its speed is
    /// the one measured (or recorded) for that precision.
    #[test]
    fn auto_is_looked_up_as_the_precision_it_resolves_to() {
        let cpu = SlotKind::Cpu { threads: 1 };
        let auto = Arch::of(&RunConfig::default());
        assert_eq!(auto.precision, Precision::Auto);
        let used = Precision::Auto.resolve(tch::Device::Cpu);
        assert_eq!(auto.on(cpu).precision, used);
        let mut speeds = Speeds::default();
        speeds.insert(Measured {
            arch: Arch {
                precision: used,
                ..auto
            },
            kind: cpu,
            speed: SPEED,
            source: Source::History { runs: 1 },
        });
        assert_eq!(speeds.get(&auto, cpu).map(|m| m.speed), Some(SPEED));
        let other = match used {
            Precision::Bf16 => Precision::Fp32,
            _ => Precision::Bf16,
        };
        let written = Arch {
            precision: other,
            ..auto
        };
        assert!(speeds.get(&written, cpu).is_none(), "{other:?} is another speed");
    }

    #[test]
    fn slot_kinds_differ_in_startup() {
        assert!(startup_seconds(SlotKind::Cuda) > startup_seconds(SlotKind::Cpu { threads: 2 }));
        assert!(Speed::checkpoint_seconds(434_162) < 0.1);
    }
}
