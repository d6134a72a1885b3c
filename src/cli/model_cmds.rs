//! Commands that use a trained model: `sample`, `eval`, `export`, `import`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use tch::Device;

use super::{ArchArgs, Cli, DeviceArgs, ModelSource};
use crate::config::SearchMethod;
use crate::data::{Dataset, DatasetKind, Split};
use crate::registry::{Registry, RunStatus};
use crate::sample::{self, Sampler};
use crate::train::checkpoint;

/// Most images `pixelx sample` draws in one grid.
pub const MAX_SAMPLE_COUNT: i64 = 10_000;
/// Largest sampled image side.
pub const MAX_SAMPLE_SIDE: i64 = 1_024;

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
    #[arg(long, short = 'c', default_value_t = 64, allow_negative_numbers = true)]
    pub count: i64,
    /// Image height (default: the training images').
    #[arg(long, allow_negative_numbers = true)]
    pub height: Option<i64>,
    /// Image width (default: the training images').
    #[arg(long, allow_negative_numbers = true)]
    pub width: Option<i64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Softmax temperature; below 1 sharpens, above 1 flattens.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub temperature: f64,
    #[arg(long, value_enum, default_value = "cached")]
    pub sampler: Sampler,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Architecture flags of the original sample.py: accepted, and checked against the checkpoint.
    #[command(flatten)]
    pub arch: ArchArgs,
}

/// Checks a size flag against its bounds.
fn bounded(flag: &str, value: i64, max: i64) -> Result<i64> {
    if value <= 0 {
        bail!("{flag} must be positive, got {value}");
    }
    if value > max {
        bail!("{flag} must be at most {max}, got {value}");
    }
    Ok(value)
}

pub fn sample(cli: &Cli, args: &SampleArgs) -> Result<()> {
    let count = bounded("--count", args.count, MAX_SAMPLE_COUNT)?;
    if !(args.temperature.is_finite() && args.temperature > 0.0) {
        bail!("--temperature must be positive, got {}", args.temperature);
    }
    let output = crate::fsio::check_output(&args.output_fname, &cli.protected())?;
    let device = args.device.resolve()?;
    // The cached sampler on the CPU runs on threads of its own, `--threads` of them. libtorch's
    // OpenMP workers, once woken by a parallel op (loading, the PNG's conversion), spin for a
    // while after each one, taking a core from those threads on a small machine; with one
    // libtorch thread they never start.
    let host_threads = sample::libtorch_threads();
    if device == Device::Cpu && args.sampler == Sampler::Cached {
        tch::set_num_threads(1);
    }
    let (_, _vs, model, ckpt) = load_source(cli, &args.source, device)?;
    args.arch.check(&model.spec)?;
    if args.label >= model.spec.classes || args.label < -1 {
        bail!(
            "--label must be -1 (random) or in 0..{}, got {}",
            model.spec.classes,
            args.label
        );
    }
    let side = ckpt.config.dataset.side();
    let h = bounded("--height", args.height.unwrap_or(side), MAX_SAMPLE_SIDE)?;
    let w = bounded("--width", args.width.unwrap_or(side), MAX_SAMPLE_SIDE)?;
    let labels = if args.label < 0 {
        sample::random_labels(count, model.spec.classes, args.seed, device)
    } else {
        sample::sample_labels(count, Some(args.label), model.spec.classes, device)
    };
    let started = std::time::Instant::now();
    let levels = crate::panics::catch("sampling", || {
        Ok(sample::sample(
            &model,
            &labels,
            (h, w),
            args.temperature,
            args.sampler,
            args.seed,
            host_threads,
        ))
    })?;
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    sample::write_grid(&levels, model.spec.levels, &output)?;
    println!(
        "{count} samples ({h}x{w}) in {:.1} s -> {}",
        started.elapsed().as_secs_f64(),
        args.output_fname.display()
    );
    Ok(())
}

/// Loads the model a command names. A run's checkpoint must be that run's own (see
/// [`check_run_checkpoint`]); a file given with `--checkpoint` is read as what it is.
fn load_source(
    cli: &Cli,
    source: &ModelSource,
    device: Device,
) -> Result<(
    PathBuf,
    tch::nn::VarStore,
    crate::model::PixelCnn,
    checkpoint::Checkpoint,
)> {
    let (path, run) = source.resolve(cli)?;
    let (vs, model, ckpt) = checkpoint::load_model(&path, device)?;
    if let Some(run) = run {
        check_run_checkpoint(cli, &run, &path, &ckpt)?;
    }
    Ok((path, vs, model, ckpt))
}

/// Refuses a checkpoint in run `run`'s folder that another run wrote: by the run its metadata
/// names (or its embedded config), and by the checksum the registry recorded for the file.
fn check_run_checkpoint(cli: &Cli, run: &str, path: &Path, ckpt: &checkpoint::Checkpoint) -> Result<()> {
    let registry = Registry::open_read_only(&cli.registry_path())?;
    let row = registry
        .run(run)?
        .with_context(|| format!("run {run} vanished from the registry"))?;
    checkpoint::check_owner(path, ckpt, run, &row.config)?;
    check_recorded_checksum(&registry, run, path)
}

/// Refuses a file in run `run`'s checkpoints folder whose SHA-256 is not the one the registry
/// recorded for it (when it recorded one), naming the run that did record those bytes.
pub(super) fn check_recorded_checksum(registry: &Registry, run: &str, path: &Path) -> Result<()> {
    match recorded_mismatch(registry, run, path)? {
        Some(m) => Err(m.refusal.into()),
        None => Ok(()),
    }
}

/// Refuses a file in run `run`'s checkpoints folder whose bytes the registry recorded for
/// another file (another run's, or another of this run's epochs): a checkpoint moved or copied
/// over this one. Bytes no run recorded are damage, which the worker answers by resuming from
/// an older verified checkpoint, so they are not refused here.
pub(super) fn check_not_foreign(registry: &Registry, run: &str, path: &Path) -> Result<()> {
    match recorded_mismatch(registry, run, path)? {
        Some(m) if !m.owners.is_empty() => Err(m.refusal.into()),
        _ => Ok(()),
    }
}

/// A checkpoint whose SHA-256 differs from the one recorded for it, with the runs that recorded
/// its bytes (none: damaged).
struct Mismatch {
    refusal: checkpoint::NotTheRuns,
    owners: Vec<String>,
}

/// How `path` differs from what the registry recorded for it; None when it matches or nothing
/// was recorded.
fn recorded_mismatch(registry: &Registry, run: &str, path: &Path) -> Result<Option<Mismatch>> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let Some(expected) = registry.recorded_checksum(run, &format!("checkpoints/{name}"))? else {
        return Ok(None);
    };
    let actual = crate::weights::file_sha256(path)?;
    if actual == expected {
        return Ok(None);
    }
    let owners = registry.runs_with_checksum(&actual)?;
    let whose = match owners.as_slice() {
        [] => "no run recorded it".to_owned(),
        ids => format!("the registry records it for run {}", ids.join(", ")),
    };
    Ok(Some(Mismatch {
        refusal: checkpoint::NotTheRuns {
            path: path.display().to_string(),
            run: run.to_owned(),
            why: format!("its SHA-256 is {actual}, run {run} recorded {expected}; {whose}"),
        },
        owners,
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EvalFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub source: ModelSource,
    #[arg(long, value_enum, default_value = "text")]
    pub format: EvalFormat,
    /// Evaluate on the first N test images only (default: the run's own setting).
    #[arg(long)]
    pub test_subset: Option<i64>,
    #[command(flatten)]
    pub device: DeviceArgs,
}

pub fn eval(cli: &Cli, args: &EvalArgs) -> Result<()> {
    let device = args.device.resolve()?;
    let (path, _vs, model, ckpt) = load_source(cli, &args.source, device)?;
    let c = &ckpt.config;
    let subset = args.test_subset.unwrap_or(c.test_subset).max(0) as usize;
    let data = Dataset::load(
        c.dataset,
        Split::Test,
        &cli.data_dir,
        subset,
        model.spec.channels as usize,
        c.color_levels,
        device,
    )?;
    let m = crate::panics::catch("evaluating", || Ok(crate::metrics::evaluate(&model, &data, 256)))?;
    match args.format {
        EvalFormat::Json => println!(
            "{}",
            serde_json::json!({"nll": m.nll, "bpd": m.bpd, "bpd8": m.bpd8, "images": data.len(), "checkpoint": path})
        ),
        EvalFormat::Text => println!(
            "checkpoint {}\nimages     {}\nnll        {:.6}\nbpd        {:.6}\nbpd8       {:.6}",
            path.display(),
            data.len(),
            m.nll,
            m.bpd,
            m.bpd8
        ),
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
    let out = crate::fsio::check_output(&args.out, &cli.protected())?;
    let (path, vs, model, ckpt) = load_source(cli, &args.source, Device::Cpu)?;
    let meta = checkpoint::metadata(&ckpt.config, &model.spec)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    crate::weights::save(&out, &crate::weights::model_tensors(&vs), meta)?;
    println!("exported {} -> {}", path.display(), args.out.display());
    Ok(())
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// A safetensors file in the reference layout.
    pub file: PathBuf,
    /// Dataset the weights were trained on (default: what the file's metadata says, else mnist).
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetKind>,
}

/// The experiment imported runs belong to.
pub const IMPORTED_EXPERIMENT: &str = "imported";

pub fn import(cli: &Cli, args: &ImportArgs) -> Result<()> {
    let run = crate::interop::import_reference(&args.file, args.dataset, &cli.runs_dir)?;
    let config = crate::run_dir::read_config(&run)?;
    let mut registry = Registry::open(&cli.registry_path())?;
    let info = crate::config::ExperimentInfo::named(IMPORTED_EXPERIMENT, "weights read with `pixelx import`");
    let experiment = registry.upsert_experiment(&info, None, SearchMethod::Grid)?;
    registry.add_run(experiment, &run.id, &config, &run.root, None)?;
    registry.record_import(
        &run.id,
        "checkpoints/best.safetensors",
        &args.file.display().to_string(),
    )?;
    debug_assert_eq!(
        registry.run(&run.id)?.map(|r| r.status),
        Some(RunStatus::Completed)
    );
    println!(
        "imported {} as run {}  ->  {}",
        args.file.display(),
        run.id,
        run.best_checkpoint().display()
    );
    Ok(())
}
