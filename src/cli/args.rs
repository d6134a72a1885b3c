//! Flags shared by several commands, each defined once, named as in the original `train.py` and
//! `sample.py`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::config::{LrSchedule, RunConfig, Source, Sources};
use crate::data::DatasetKind;
use crate::model::ModelSpec;
use crate::precision::Precision;

/// Parses a count that must be at least 1 (`--limit`, `--best`).
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a whole number")),
    }
}

/// Where a run trains or a model runs: the original's `--cuda` and pixelx's `--device`.
#[derive(Args, Debug, Default, Clone)]
pub struct DeviceArgs {
    /// The original's flag: `--cuda false` uses the CPU, `--cuda` / `--cuda true` a GPU if any.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub cuda: Option<bool>,
    /// auto, cpu, cuda or cuda:N (overrides --cuda).
    #[arg(long)]
    pub device: Option<String>,
}

impl DeviceArgs {
    /// The device asked for, if either flag was given.
    pub fn choice(&self) -> Option<String> {
        self.device
            .clone()
            .or_else(|| self.cuda.map(|c| if c { "auto" } else { "cpu" }.to_owned()))
    }

    /// Resolved against this machine, `auto` when no flag was given.
    pub fn resolve(&self) -> Result<tch::Device> {
        crate::device::resolve_device(self.choice().as_deref().unwrap_or("auto"))
    }
}

/// The original `train.py` flags plus pixelx's own; unset flags keep the defaults (and the
/// `PIXELX_<PARAM>` environment variables, which override the defaults).
#[derive(Args, Debug, Default, Clone)]
pub struct TrainArgs {
    /// Number of epochs to train for.
    #[arg(long)]
    pub epochs: Option<u32>,
    /// Images per mini-batch.
    #[arg(long, allow_hyphen_values = true)]
    pub batch_size: Option<i64>,
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetKind>,
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
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Seed for initialisation, data order and samples.
    #[arg(long)]
    pub seed: Option<u64>,
    /// constant, cosine or cyclic (the original's).
    #[arg(long, value_enum)]
    pub lr_schedule: Option<LrSchedule>,
    /// Train on the first N images only.
    #[arg(long, allow_hyphen_values = true)]
    pub train_subset: Option<i64>,
    /// Evaluate on the first N test images only.
    #[arg(long, allow_hyphen_values = true)]
    pub test_subset: Option<i64>,
    /// auto (the default: bf16 where the CPU or GPU computes it natively, else fp32), fp32, or bf16
    /// autocast for training (weights and checkpoints stay fp32).
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
}

impl TrainArgs {
    /// The run's configuration: built-in defaults, then `PIXELX_<PARAM>` variables, then the
    /// flags given. Errors name the key and where its value came from.
    pub fn config(&self) -> Result<RunConfig> {
        let mut sources = Sources::new(None);
        let mut env = crate::config::Table::new();
        for (key, value, var) in crate::config::env_run_values() {
            sources.set(&format!("env.{key}"), Source::Env(var));
            env.insert(key, value);
        }
        // Named by key alone: the variable the value came from follows it.
        let base = crate::config::overlay(&RunConfig::default(), &env, "", "env", &sources)
            .map_err(anyhow::Error::msg)?;
        let config = self.apply(base);
        config.validate().map_err(|e| {
            let origin = match self.flag_for(&e.key) {
                Some(flag) => Source::Flag(flag),
                None if env.contains_key(&e.key) => sources.of(&format!("env.{}", e.key)),
                None => Source::Default,
            };
            e.from_source(origin)
        })?;
        Ok(config)
    }

    /// The flag that set `key`, if one did.
    fn flag_for(&self, key: &str) -> Option<String> {
        let a = &self.arch;
        let given = match key {
            "epochs" => self.epochs.is_some(),
            "batch_size" => self.batch_size.is_some(),
            "dataset" => self.dataset.is_some(),
            "causal_ksize" => a.causal_ksize.is_some(),
            "hidden_ksize" => a.hidden_ksize.is_some(),
            "data_channels" => a.data_channels.is_some(),
            "color_levels" => a.color_levels.is_some(),
            "hidden_fmaps" => a.hidden_fmaps.is_some(),
            "out_hidden_fmaps" => a.out_hidden_fmaps.is_some(),
            "hidden_layers" => a.hidden_layers.is_some(),
            "learning_rate" => self.learning_rate.is_some(),
            "weight_decay" => self.weight_decay.is_some(),
            "max_norm" => self.max_norm.is_some(),
            "epoch_samples" => self.epoch_samples.is_some(),
            "device" => self.device.choice().is_some(),
            "train_subset" => self.train_subset.is_some(),
            "test_subset" => self.test_subset.is_some(),
            _ => false,
        };
        given.then(|| format!("--{}", key.replace('_', "-")))
    }

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
            seed,
            lr_schedule,
            train_subset,
            test_subset,
            precision
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
        if let Some(d) = self.device.choice() {
            c.device = d;
        }
        c
    }
}

/// The architecture flags of the original `train.py` and `sample.py`. `train` builds the model
/// from them; `sample` only checks them against the checkpoint, which records its architecture.
#[derive(Args, Debug, Default, Clone)]
pub struct ArchArgs {
    /// Kernel size of the causal (first) block; odd.
    #[arg(long, allow_hyphen_values = true)]
    pub causal_ksize: Option<i64>,
    /// Kernel size of the gated blocks; odd.
    #[arg(long, allow_hyphen_values = true)]
    pub hidden_ksize: Option<i64>,
    /// Channels the model sees (1 or 3; 3 replicates grayscale as the original did).
    #[arg(long, allow_hyphen_values = true)]
    pub data_channels: Option<i64>,
    /// Levels each sub-pixel is quantised to (2..=256).
    #[arg(long, allow_hyphen_values = true)]
    pub color_levels: Option<i64>,
    /// Feature maps of the hidden layers (divisible by data_channels).
    #[arg(long, allow_hyphen_values = true)]
    pub hidden_fmaps: Option<i64>,
    /// Feature maps of the output hidden layer.
    #[arg(long, allow_hyphen_values = true)]
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

/// Where a command finds its model: a run id (or a prefix of one), or a checkpoint file.
#[derive(Args, Debug, Clone)]
pub struct ModelSource {
    /// Run id, or an unambiguous prefix of one (its best checkpoint is used).
    pub run_id: Option<String>,
    /// A checkpoint or export file instead of a run.
    #[arg(long, visible_aliases = ["model-path"], short = 'm')]
    pub checkpoint: Option<PathBuf>,
}

impl ModelSource {
    /// The weight file to read: the given path, or the run's best (else newest) checkpoint,
    /// with the run's full id in the second case (its checkpoint must prove it is the run's).
    pub fn resolve(&self, cli: &super::Cli) -> Result<(PathBuf, Option<String>)> {
        match (&self.run_id, &self.checkpoint) {
            (Some(_), Some(_)) => bail!("give either a run id or --checkpoint, not both"),
            (None, None) => bail!("give a run id or --checkpoint PATH"),
            (None, Some(p)) => Ok((p.clone(), None)),
            (Some(given), None) => {
                let id = super::resolve_run_id(cli, given)?;
                let run = crate::run_dir::RunDir::new(&cli.runs_dir, &id);
                if !run.root.is_dir() {
                    bail!(
                        "run {id} is in the registry, but its folder {} does not exist: its runs \
                         folder is another than {} (pass that one with --runs-dir)",
                        run.root.display(),
                        cli.runs_dir.display()
                    );
                }
                let best = run.best_checkpoint();
                if best.exists() {
                    return Ok((best, Some(id)));
                }
                run.epoch_checkpoints()
                    .into_iter()
                    .next()
                    .map(|(_, p)| (p, Some(id.clone())))
                    .with_context(|| {
                        format!(
                            "run {id} has no checkpoint yet (looked in {})",
                            run.checkpoints_dir().display()
                        )
                    })
            }
        }
    }
}
