use serde::{Deserialize, Serialize};

use crate::data::DatasetKind;
use crate::precision::Precision;

/// Upper bounds of sizes: far beyond any useful run, low enough that no product of them
/// overflows and that an allocation is refused with a message instead of aborting the process.
pub const MAX_EPOCHS: u32 = 100_000;
pub const MAX_BATCH_SIZE: i64 = 65_536;
pub const MAX_KSIZE: i64 = 31;
pub const MAX_FMAPS: i64 = 8_192;
pub const MAX_LAYERS: i64 = 128;
pub const MAX_EPOCH_SAMPLES: i64 = 1_024;
/// Beyond this no model learns (the cyclic schedule goes to ten times it, which must stay finite).
pub const MAX_LEARNING_RATE: f64 = 1e6;

/// A configuration value that cannot be used, named by its key (and, once known, where the
/// value came from) so the user can find it.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid `{key}`{}: {message}", origin.as_ref().map(|o| format!(" ({o})")).unwrap_or_default())]
pub struct ConfigError {
    pub key: String,
    pub message: String,
    /// Where the value came from, e.g. "from --set hidden_ksize=4".
    pub origin: Option<String>,
}

impl ConfigError {
    pub fn new(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            message: message.into(),
            origin: None,
        }
    }

    /// The same error, saying where the value came from (unless from the experiment file,
    /// which the message names already).
    pub fn from_source(mut self, origin: super::sources::Source) -> Self {
        if !matches!(origin, super::sources::Source::File(_)) {
            self.origin = Some(origin.to_string());
        }
        self
    }
}

/// The error of an invalid `key`.
fn err(key: &str, message: String) -> Result<(), ConfigError> {
    Err(ConfigError::new(key, message))
}

/// Learning-rate schedule over the optimiser steps of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// The configured learning rate throughout.
    Constant,
    /// Cosine decay from the learning rate to zero over the whole run.
    Cosine,
    /// The original's `CyclicLR`: triangular between lr and 10·lr, 2,000 steps up, 2,000 down.
    Cyclic,
}

/// Everything that determines one training run. Two runs with equal configs produce equal
/// metrics on CPU, which is what makes a config's hash a run identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    pub dataset: DatasetKind,
    pub epochs: u32,
    pub batch_size: i64,
    pub causal_ksize: i64,
    pub hidden_ksize: i64,
    /// Channels the model sees; 0 means the dataset's own (1 for grayscale, 3 for CIFAR).
    /// 3 on a grayscale dataset replicates it, as the original always did.
    pub data_channels: i64,
    pub color_levels: i64,
    pub hidden_fmaps: i64,
    pub out_hidden_fmaps: i64,
    pub hidden_layers: i64,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub max_norm: f64,
    pub epoch_samples: i64,
    pub seed: u64,
    /// `auto` (first CUDA device, else CPU), `cpu`, or `cuda:N`.
    pub device: String,
    pub lr_schedule: LrSchedule,
    /// Train on the first N training images only (0 = all).
    pub train_subset: i64,
    /// Evaluate on the first N test images only (0 = all).
    pub test_subset: i64,
    /// `auto` (bf16 where the device computes it natively, else fp32), `fp32`, or `bf16`
    /// autocast for the training forward pass. A stored config without the key (a run folder,
    /// registry row or checkpoint from before `precision` existed) trained in fp32, the default
    /// then: it reads back as fp32, not as today's `auto`.
    #[serde(default = "Precision::before_auto")]
    pub precision: Precision,
}

impl Default for RunConfig {
    /// The original `train.py` defaults, except grayscale stays at one channel.
    fn default() -> Self {
        Self {
            dataset: DatasetKind::Mnist,
            epochs: 25,
            batch_size: 32,
            causal_ksize: 7,
            hidden_ksize: 7,
            data_channels: 0,
            color_levels: 2,
            hidden_fmaps: 30,
            out_hidden_fmaps: 10,
            hidden_layers: 6,
            learning_rate: 1e-4,
            weight_decay: 1e-4,
            max_norm: 1.0,
            epoch_samples: 25,
            seed: 0,
            device: "auto".into(),
            lr_schedule: LrSchedule::Cyclic,
            train_subset: 0,
            test_subset: 0,
            precision: Precision::Auto,
        }
    }
}

impl RunConfig {
    /// Channels the model is built for, after resolving `data_channels = 0`.
    pub fn channels(&self) -> i64 {
        if self.data_channels == 0 {
            self.dataset.channels()
        } else {
            self.data_channels
        }
    }

    /// Checks every value a user can get wrong, group by group; the first problem found is
    /// returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_loop()?;
        self.check_model()?;
        self.check_optimiser()?;
        self.check_data()
    }

    /// Epochs and batch size.
    fn check_loop(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_EPOCHS).contains(&self.epochs) {
            return err(
                "epochs",
                format!("must be in 1..={MAX_EPOCHS}, got {}", self.epochs),
            );
        }
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return err(
                "batch_size",
                format!("must be in 1..={MAX_BATCH_SIZE}, got {}", self.batch_size),
            );
        }
        Ok(())
    }

    /// The architecture: kernel sizes, channels, levels, feature maps and layers.
    fn check_model(&self) -> Result<(), ConfigError> {
        for (key, k) in [
            ("causal_ksize", self.causal_ksize),
            ("hidden_ksize", self.hidden_ksize),
        ] {
            if !(1..=MAX_KSIZE).contains(&k) || k % 2 == 0 {
                return err(key, format!("must be an odd number in 1..={MAX_KSIZE}, got {k}"));
            }
        }
        match (self.data_channels, self.dataset.channels()) {
            (0 | 1 | 3, 1) | (0 | 3, 3) => {}
            (c, 1) => {
                return err(
                    "data_channels",
                    format!("must be 1 or 3 (or 0 for the dataset's own), got {c}"),
                )
            }
            (c, _) => {
                return err(
                    "data_channels",
                    format!("{} has 3 channels, got {c}", self.dataset),
                )
            }
        }
        if !(2..=256).contains(&self.color_levels) {
            return err(
                "color_levels",
                format!("must be in 2..=256, got {}", self.color_levels),
            );
        }
        if !(1..=MAX_FMAPS).contains(&self.hidden_fmaps) {
            return err(
                "hidden_fmaps",
                format!("must be in 1..={MAX_FMAPS}, got {}", self.hidden_fmaps),
            );
        }
        // The gate pairs channel j with j + F, so both halves keep the colour grouping only when
        // F is a multiple of C. The output layers' masks group channels by index modulo C and
        // stay causal for any count, so `out_hidden_fmaps` needs no such rule.
        let c = self.channels();
        if self.hidden_fmaps % c != 0 {
            return err(
                "hidden_fmaps",
                format!(
                    "must be divisible by data_channels = {c} to keep the colour grouping, got {}",
                    self.hidden_fmaps
                ),
            );
        }
        if !(1..=MAX_FMAPS).contains(&self.out_hidden_fmaps) {
            return err(
                "out_hidden_fmaps",
                format!("must be in 1..={MAX_FMAPS}, got {}", self.out_hidden_fmaps),
            );
        }
        if !(0..=MAX_LAYERS).contains(&self.hidden_layers) {
            return err(
                "hidden_layers",
                format!("must be in 0..={MAX_LAYERS}, got {}", self.hidden_layers),
            );
        }
        Ok(())
    }

    /// The optimiser: learning rate, weight decay and gradient clipping.
    fn check_optimiser(&self) -> Result<(), ConfigError> {
        if !(self.learning_rate.is_finite()
            && self.learning_rate > 0.0
            && self.learning_rate <= MAX_LEARNING_RATE)
        {
            return err(
                "learning_rate",
                format!(
                    "must be positive and at most {MAX_LEARNING_RATE:e}, got {}",
                    self.learning_rate
                ),
            );
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return err("weight_decay", format!("must be >= 0, got {}", self.weight_decay));
        }
        if !(self.max_norm.is_finite() && self.max_norm > 0.0) {
            return err("max_norm", format!("must be positive, got {}", self.max_norm));
        }
        Ok(())
    }

    /// Samples per epoch, the data subsets and the device.
    fn check_data(&self) -> Result<(), ConfigError> {
        if !(0..=MAX_EPOCH_SAMPLES).contains(&self.epoch_samples) {
            return err(
                "epoch_samples",
                format!("must be in 0..={MAX_EPOCH_SAMPLES}, got {}", self.epoch_samples),
            );
        }
        for (key, n) in [
            ("train_subset", self.train_subset),
            ("test_subset", self.test_subset),
        ] {
            if n < 0 {
                return err(key, format!("must not be negative (0 means all images), got {n}"));
            }
        }
        crate::device::parse_device(&self.device).map_err(|e| ConfigError::new("device", e.to_string()))?;
        Ok(())
    }

    /// The model this config trains, with every "all"/"the dataset's own" spelled one way:
    /// `data_channels = 0` as the dataset's channels, a train or test subset as large as its
    /// split as 0 (all). Two configs with the same effective config train the same model on the
    /// same images (run ids still hash the config as written, so recorded ids never change).
    pub fn effective(&self) -> RunConfig {
        let mut c = self.clone();
        c.data_channels = self.channels();
        if c.train_subset >= self.dataset.train_images() {
            c.train_subset = 0;
        }
        if c.test_subset >= self.dataset.test_images() {
            c.test_subset = 0;
        }
        c
    }

    /// Why `self` and `other`, written differently, are the same model (see
    /// [`RunConfig::effective`]): `data_channels 0 and 1 both mean mnist's 1 channel`.
    pub fn same_model_because(&self, other: &RunConfig) -> String {
        let d = self.dataset;
        let mut why = Vec::new();
        if self.data_channels != other.data_channels {
            why.push(format!(
                "data_channels {} and {} both mean {} channel(s) on {}",
                self.data_channels,
                other.data_channels,
                self.channels(),
                d.name()
            ));
        }
        for (key, a, b, all, split) in [
            (
                "train_subset",
                self.train_subset,
                other.train_subset,
                d.train_images(),
                "training",
            ),
            (
                "test_subset",
                self.test_subset,
                other.test_subset,
                d.test_images(),
                "test",
            ),
        ] {
            if a != b {
                why.push(format!(
                    "{key} {a} and {b} both mean all {all} {split} images of {}",
                    d.name()
                ));
            }
        }
        why.join("; ")
    }

    /// Training images per epoch: the subset, or the whole training split.
    pub fn images_per_epoch(&self) -> i64 {
        let all = self.dataset.train_images();
        if self.train_subset == 0 {
            all
        } else {
            self.train_subset.min(all)
        }
    }

    /// The model architecture this config builds.
    pub fn model_spec(&self) -> crate::model::ModelSpec {
        crate::model::ModelSpec {
            channels: self.channels(),
            levels: self.color_levels,
            hidden_fmaps: self.hidden_fmaps,
            out_hidden_fmaps: self.out_hidden_fmaps,
            hidden_layers: self.hidden_layers,
            causal_ksize: self.causal_ksize,
            hidden_ksize: self.hidden_ksize,
            classes: self.dataset.classes(),
        }
    }
}

#[cfg(test)]
mod effective_tests {
    use super::*;

    #[test]
    fn the_same_model_written_two_ways_has_one_effective_config() {
        let a = RunConfig::default();
        let b = RunConfig {
            data_channels: 1,
            test_subset: 10_000,
            train_subset: 60_000,
            ..RunConfig::default()
        };
        assert_eq!(a.effective(), b.effective());
        let why = a.same_model_because(&b);
        assert!(
            why.contains("data_channels 0 and 1 both mean 1 channel(s) on mnist"),
            "{why}"
        );
        assert!(
            why.contains("test_subset 0 and 10000") && why.contains("train_subset"),
            "{why}"
        );
        // A real subset, or channels replicated to RGB, is another model.
        for other in [
            RunConfig {
                test_subset: 9_999,
                ..RunConfig::default()
            },
            RunConfig {
                data_channels: 3,
                ..RunConfig::default()
            },
        ] {
            assert_ne!(a.effective(), other.effective());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut RunConfig)) -> Result<(), ConfigError> {
        let mut c = RunConfig::default();
        f(&mut c);
        c.validate()
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(with(|_| {}), Ok(()));
    }

    /// `auto` is the default of a new config, but a stored config without the key was written
    /// before `precision` existed, when runs trained in fp32: it must resume in fp32.
    #[test]
    fn a_stored_config_without_precision_trained_in_fp32() {
        assert_eq!(RunConfig::default().precision, Precision::Auto);
        let old: RunConfig = toml::from_str("epochs = 3").unwrap();
        assert_eq!((old.epochs, old.precision), (3, Precision::Fp32));
        let old: RunConfig = serde_json::from_str(r#"{"epochs": 3}"#).unwrap();
        assert_eq!(old.precision, Precision::Fp32);
        let auto: RunConfig = toml::from_str("precision = \"auto\"").unwrap();
        assert_eq!(auto.precision, Precision::Auto);
        let written = toml::to_string(&RunConfig::default()).unwrap();
        assert!(written.contains("precision = \"auto\""), "{written}");
    }

    #[test]
    fn rejects_what_the_issue_lists() {
        let key = |r: Result<(), ConfigError>| r.unwrap_err().key;
        assert_eq!(key(with(|c| c.hidden_ksize = 4)), "hidden_ksize");
        assert_eq!(key(with(|c| c.causal_ksize = 0)), "causal_ksize");
        assert_eq!(key(with(|c| c.color_levels = 1)), "color_levels");
        assert_eq!(key(with(|c| c.color_levels = 257)), "color_levels");
        assert_eq!(
            key(with(|c| {
                c.data_channels = 3;
                c.hidden_fmaps = 31
            })),
            "hidden_fmaps"
        );
        assert_eq!(key(with(|c| c.learning_rate = 0.0)), "learning_rate");
        assert_eq!(key(with(|c| c.learning_rate = f64::NAN)), "learning_rate");
        assert_eq!(key(with(|c| c.batch_size = 0)), "batch_size");
        assert_eq!(
            key(with(|c| {
                c.dataset = DatasetKind::Cifar;
                c.data_channels = 1
            })),
            "data_channels"
        );
        assert_eq!(key(with(|c| c.device = "tpu".into())), "device");
        assert_eq!(key(with(|c| c.batch_size = i64::MAX)), "batch_size");
        assert_eq!(key(with(|c| c.epoch_samples = 1_000_000_000)), "epoch_samples");
        assert_eq!(key(with(|c| c.hidden_layers = -1)), "hidden_layers");
        assert_eq!(key(with(|c| c.learning_rate = 1e308)), "learning_rate");
    }

    #[test]
    fn grayscale_keeps_one_channel_unless_asked() {
        let mut c = RunConfig::default();
        assert_eq!(c.channels(), 1);
        c.data_channels = 3;
        assert_eq!(c.channels(), 3);
        c.dataset = DatasetKind::Cifar;
        c.data_channels = 0;
        assert_eq!(c.channels(), 3);
    }
}
