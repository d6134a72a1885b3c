//! Commands that use a trained model: `sample`, `eval`, `export`, `import`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use tch::Device;

use super::{ArchArgs, Cli, ModelSource};
use crate::data::{Dataset, Split};
use crate::device::resolve_device;
use crate::sample::{self, Sampler};
use crate::train::checkpoint;

#[derive(Args, Debug)]
pub struct SampleArgs {
    #[command(flatten)]
    pub source: ModelSource,
    /// Output PNG file.
    #[arg(long, short = 'o', default_value = "samples/samples.png")]
    pub output_fname: PathBuf,
    /// Class of the sampled images; -1 draws a random class per image.
    #[arg(long, short = 'l', visible_alias = "l", default_value_t = -1, allow_negative_numbers = true)]
    pub label: i64,
    /// Number of images.
    #[arg(long, short = 'c', default_value_t = 64)]
    pub count: i64,
    /// Image height (default: the training images').
    #[arg(long)]
    pub height: Option<i64>,
    /// Image width (default: the training images').
    #[arg(long)]
    pub width: Option<i64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Softmax temperature; below 1 sharpens, above 1 flattens.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    #[arg(long, value_enum, default_value = "cached")]
    pub sampler: Sampler,
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub cuda: Option<bool>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Architecture flags of the original sample.py: accepted, and checked against the checkpoint.
    #[command(flatten)]
    pub arch: ArchArgs,
}

fn device_of(device: &str, cuda: Option<bool>) -> Result<Device> {
    resolve_device(match cuda {
        Some(false) => "cpu",
        _ => device,
    })
}

pub fn sample(cli: &Cli, args: &SampleArgs) -> Result<()> {
    let path = args.source.resolve(&cli.runs_dir)?;
    let device = device_of(&args.device, args.cuda)?;
    let (_vs, model, ckpt) = checkpoint::load_model(&path, device)?;
    args.arch.check(&model.spec)?;
    if !(args.temperature.is_finite() && args.temperature > 0.0) {
        bail!("--temperature must be positive, got {}", args.temperature);
    }
    if args.count <= 0 {
        bail!("--count must be positive, got {}", args.count);
    }
    if args.label >= model.spec.classes || args.label < -1 {
        bail!(
            "--label must be -1 (random) or in 0..{}, got {}",
            model.spec.classes,
            args.label
        );
    }
    let side = if ckpt.config.dataset == "cifar" { 32 } else { 28 };
    let (h, w) = (args.height.unwrap_or(side), args.width.unwrap_or(side));
    if h <= 0 || w <= 0 {
        bail!("--height and --width must be positive");
    }
    let labels = if args.label < 0 {
        sample::random_labels(args.count, model.spec.classes, args.seed, device)
    } else {
        sample::sample_labels(args.count, Some(args.label), model.spec.classes, device)
    };
    let started = std::time::Instant::now();
    let levels = sample::sample(&model, &labels, h, w, args.temperature, args.sampler, args.seed);
    if let Some(dir) = args.output_fname.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    sample::write_grid(&levels, model.spec.levels, &args.output_fname)?;
    println!(
        "{} samples ({h}x{w}) in {:.1} s -> {}",
        args.count,
        started.elapsed().as_secs_f64(),
        args.output_fname.display()
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub source: ModelSource,
    /// text or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
    /// Evaluate on the first N test images only (default: the run's own setting).
    #[arg(long)]
    pub test_subset: Option<i64>,
    #[arg(long, default_value = "auto")]
    pub device: String,
}

pub fn eval(cli: &Cli, args: &EvalArgs) -> Result<()> {
    let path = args.source.resolve(&cli.runs_dir)?;
    let device = resolve_device(&args.device)?;
    let (_vs, model, ckpt) = checkpoint::load_model(&path, device)?;
    let c = &ckpt.config;
    let subset = args.test_subset.unwrap_or(c.test_subset).max(0) as usize;
    let data = Dataset::load(
        &c.dataset,
        Split::Test,
        &cli.data_dir,
        subset,
        model.spec.channels as usize,
        c.color_levels,
        device,
    )?;
    let m = crate::metrics::evaluate(&model, &data, 256);
    if args.format == "json" {
        println!(
            "{}",
            serde_json::json!({"nll": m.nll, "bpd": m.bpd, "bpd8": m.bpd8, "images": data.len(), "checkpoint": path})
        );
    } else {
        println!(
            "checkpoint {}\nimages     {}\nnll        {:.6}\nbpd        {:.6}\nbpd8       {:.6}",
            path.display(),
            data.len(),
            m.nll,
            m.bpd,
            m.bpd8
        );
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub source: ModelSource,
    /// Output .safetensors file.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn export(cli: &Cli, args: &ExportArgs) -> Result<()> {
    let path = args.source.resolve(&cli.runs_dir)?;
    let (vs, model, ckpt) = checkpoint::load_model(&path, Device::Cpu)?;
    let meta = checkpoint::metadata(&ckpt.config, &model.spec)?;
    crate::weights::save(&args.out, &crate::weights::model_tensors(&vs), meta)?;
    println!("exported {} -> {}", path.display(), args.out.display());
    Ok(())
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// A safetensors file in the reference layout.
    pub file: PathBuf,
    /// Dataset the weights were trained on (when the file does not say).
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
}

pub fn import(cli: &Cli, args: &ImportArgs) -> Result<()> {
    let run = crate::interop::import_reference(&args.file, &args.dataset, &cli.runs_dir)?;
    println!(
        "imported {} as run {}  ->  {}",
        args.file.display(),
        run.id,
        run.best_checkpoint().display()
    );
    Ok(())
}
