//! Flags shared by several commands, named as in the original `train.py` and `sample.py`.

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::model::ModelSpec;
use clap::Args;

use crate::config::{LrSchedule, RunConfig};
use crate::precision::Precision;

/// The original `train.py` flags plus pixelx's own; unset flags keep the defaults.
#[derive(Args, Debug, Default, Clone)]
pub struct TrainArgs {
    /// Number of epochs to train for.
    #[arg(long)]
    pub epochs: Option<u32>,
    /// Images per mini-batch.
    #[arg(long, allow_hyphen_values = true)]
    pub batch_size: Option<i64>,
    /// mnist, fashionmnist or cifar.
    #[arg(long)]
    pub dataset: Option<String>,
    #[command(flatten)]
    pub arch: ArchArgs,
    /// Adam learning rate.
    #[arg(long, visible_alias = "lr", allow_hyphen_values = true)]
    pub learning_rate: Option<f64>,
    /// Adam weight decay (L2).
    #[arg(long, allow_hyphen_values = true)]
    pub weight_decay: Option<f64>,
    /// Clip gradients to this global norm.
    #[arg(long, allow_hyphen_values = true)]
    pub max_norm: Option<f64>,
    /// Images to sample after each epoch (0 = none).
    #[arg(long, allow_hyphen_values = true)]
    pub epoch_samples: Option<i64>,
    /// The original's flag: `--cuda false` trains on CPU, `--cuda` / `--cuda true` on a GPU if any.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub cuda: Option<bool>,
    /// auto, cpu, cuda or cuda:N (overrides --cuda).
    #[arg(long)]
    pub device: Option<String>,
    /// Seed for initialisation, data order and samples.
    #[arg(long)]
    pub seed: Option<u64>,
    /// constant, cosine or cyclic (the original's).
    #[arg(long, value_enum)]
    pub lr_schedule: Option<LrSchedule>,
    /// Train on the first N images only.
    #[arg(long)]
    pub train_subset: Option<i64>,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    pub test_subset: Option<i64>,
    /// fp32, or bf16 autocast for training (for GPUs; weights and checkpoints stay fp32).
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
}

impl TrainArgs {
    /// Applies the flags that were given on top of `base`.
    pub fn apply(&self, mut c: RunConfig) -> RunConfig {
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = &self.$field { c.$field = v.clone(); } )* };
        }
        set!(
            epochs,
            batch_size,
            dataset,
            learning_rate,
            weight_decay,
            max_norm,
            epoch_samples,
            seed
        );
        let a = &self.arch;
        let arch = [
            (&mut c.causal_ksize, a.causal_ksize),
            (&mut c.hidden_ksize, a.hidden_ksize),
            (&mut c.data_channels, a.data_channels),
            (&mut c.color_levels, a.color_levels),
            (&mut c.hidden_fmaps, a.hidden_fmaps),
            (&mut c.out_hidden_fmaps, a.out_hidden_fmaps),
            (&mut c.hidden_layers, a.hidden_layers),
        ];
        for (field, given) in arch {
            if let Some(v) = given {
                *field = v;
            }
        }
        set!(lr_schedule, train_subset, test_subset, precision);
        if let Some(cuda) = self.cuda {
            c.device = if cuda { "auto".into() } else { "cpu".into() };
        }
        if let Some(d) = &self.device {
            c.device = d.clone();
        }
        c
    }
}

/// The architecture flags of the original `train.py` and `sample.py`. `train` builds the model
/// from them; `sample` only checks them against the checkpoint, which records its architecture.
#[derive(Args, Debug, Default, Clone)]
pub struct ArchArgs {
    /// Kernel size of the causal (first) block; odd.
    #[arg(long)]
    pub causal_ksize: Option<i64>,
    /// Kernel size of the gated blocks; odd.
    #[arg(long)]
    pub hidden_ksize: Option<i64>,
    /// Channels the model sees (1 or 3; 3 replicates grayscale as the original did).
    #[arg(long)]
    pub data_channels: Option<i64>,
    /// Levels each sub-pixel is quantised to (2..=256).
    #[arg(long)]
    pub color_levels: Option<i64>,
    /// Feature maps of the hidden layers (divisible by data_channels).
    #[arg(long)]
    pub hidden_fmaps: Option<i64>,
    /// Feature maps of the output hidden layer.
    #[arg(long)]
    pub out_hidden_fmaps: Option<i64>,
    /// Number of gated blocks.
    #[arg(long, allow_hyphen_values = true)]
    pub hidden_layers: Option<i64>,
}

impl ArchArgs {
    pub fn check(&self, spec: &ModelSpec) -> Result<()> {
        let pairs = [
            ("causal_ksize", self.causal_ksize, spec.causal_ksize),
            ("hidden_ksize", self.hidden_ksize, spec.hidden_ksize),
            ("data_channels", self.data_channels, spec.channels),
            ("color_levels", self.color_levels, spec.levels),
            ("hidden_fmaps", self.hidden_fmaps, spec.hidden_fmaps),
            ("out_hidden_fmaps", self.out_hidden_fmaps, spec.out_hidden_fmaps),
            ("hidden_layers", self.hidden_layers, spec.hidden_layers),
        ];
        for (name, given, actual) in pairs {
            if let Some(g) = given.filter(|g| *g != actual) {
                bail!(
                    "--{} {g} does not match the checkpoint, which has {name} = {actual}",
                    name.replace('_', "-")
                );
            }
        }
        Ok(())
    }
}

/// Where a command finds its model: a run id, or a checkpoint file.
#[derive(Args, Debug, Clone)]
pub struct ModelSource {
    /// Run id (its best checkpoint is used).
    pub run_id: Option<String>,
    /// A checkpoint or export file instead of a run.
    #[arg(long, visible_aliases = ["model-path"], short = 'm')]
    pub checkpoint: Option<PathBuf>,
}

impl ModelSource {
    /// The weight file to read: the given path, or the run's best (else newest) checkpoint.
    pub fn resolve(&self, runs_dir: &std::path::Path) -> Result<PathBuf> {
        match (&self.run_id, &self.checkpoint) {
            (Some(_), Some(_)) => bail!("give either a run id or --checkpoint, not both"),
            (None, None) => bail!("give a run id or --checkpoint PATH"),
            (None, Some(p)) => Ok(p.clone()),
            (Some(id), None) => {
                let run = crate::run_dir::RunDir::new(runs_dir, id);
                if !run.root.is_dir() {
                    bail!("no run `{id}` in {}", runs_dir.display());
                }
                let best = run.best_checkpoint();
                if best.exists() {
                    return Ok(best);
                }
                run.epoch_checkpoints()
                    .into_iter()
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("run `{id}` has no checkpoint yet"))
            }
        }
    }
}
