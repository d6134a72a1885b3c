//! `pixelx train`, `pixelx resume` and the hidden `pixelx worker`: one run, in this process.

use anyhow::{bail, Result};

use super::recorded::execute_recorded;
use super::train_bar::TrainBar;
use super::{init_logging, Cli, Interrupted, TrainArgs, WorkerBusy, WorkerStopped};
use crate::config::{ExperimentInfo, SearchMethod};
use crate::execute::{execute_run, Busy, ExecuteOptions};
use crate::journal::FinalStatus;
use crate::registry::{Registry, RunFilter, RunStatus};
use crate::run_dir::{adhoc_run_id, RunDir};

/// The experiment that runs started with `pixelx train` belong to.
pub const ADHOC_EXPERIMENT: &str = "adhoc";

pub fn train(cli: &Cli, args: &TrainArgs) -> Result<()> {
    let config = args.config()?;
    let device = crate::device::resolve_device(&config.device)?;
    crate::train::memory::check_fits(&config, device)?;
    // Missing data is reported before anything is recorded, so no failed run is left behind.
    crate::data::check_available(config.dataset, &cli.data_dir)?;
    let id = adhoc_run_id(&config);
    let mut registry = Registry::open(&cli.registry_path())?;
    let info = ExperimentInfo::named(ADHOC_EXPERIMENT, "runs started with `pixelx train`");
    let experiment = registry.upsert_experiment(&info, None, SearchMethod::Grid)?;
    let run = RunDir::create(&cli.runs_dir, &id, &config)?;
    registry.add_run(experiment, &id, &config, &run.root, None)?;
    drop(registry);
    init_logging(cli.quiet, Some(&run.log_path()));
    println!("run {id}  ->  {}", run.root.display());
    execute_here(cli, &id, config.epochs)
}

pub fn resume(cli: &Cli, given: &str, force: bool) -> Result<()> {
    let mut registry = Registry::open(&cli.registry_path())?;
    let id = super::resolve_in(&registry, given)?;
    registry.ingest(&id, &RunDir::new(&cli.runs_dir, &id).root)?;
    let row = registry
        .run(&id)?
        .ok_or_else(|| anyhow::anyhow!("run {id} vanished"))?;
    match row.status {
        RunStatus::Completed => {
            println!("run {id} is already complete");
            return Ok(());
        }
        RunStatus::Running if row.process_gone() => {
            registry.set_status(&id, RunStatus::Interrupted, Some("worker gone (recovered)"))?;
        }
        RunStatus::Running => bail!(
            "run {id} is running ({}); it cannot be resumed twice",
            row.holder()
        ),
        RunStatus::Pruned | RunStatus::Diverged if !force => bail!(
            "run {id} was {}{}; `pixelx resume --force {id}` continues it anyway",
            row.status.as_str(),
            row.error.map(|e| format!(" ({e})")).unwrap_or_default()
        ),
        RunStatus::Pruned | RunStatus::Diverged => {
            let note = format!("resumed after being {}", row.status.as_str());
            registry.set_status(&id, RunStatus::Interrupted, Some(&note))?;
        }
        RunStatus::Queued | RunStatus::Interrupted | RunStatus::Failed => {}
    }
    // The registry's config is the run's: the folder's copy is written again from it, so a
    // hand-edited or lost config.toml cannot make the run train something else.
    let run = RunDir::create(&cli.runs_dir, &id, &row.config)?;
    // The worker proves each checkpoint is the run's by the id it carries; the registry's
    // checksums also catch the run's own files moved or copied over one another. (A damaged
    // one is the worker's to skip for an older verified one.)
    for (_, path) in run.epoch_checkpoints() {
        super::model_cmds::check_not_foreign(&registry, &id, &path)?;
    }
    drop(registry);
    init_logging(cli.quiet, Some(&run.log_path()));
    if run.epoch_checkpoints().is_empty() {
        println!("run {id} has no checkpoint yet; it starts from the beginning");
    } else {
        println!("run {id} resumes from its last checkpoint");
    }
    execute_here(cli, &id, row.config.epochs)
}

/// The hidden subcommand the scheduler starts, one per run. It writes only the run's folder.
pub fn worker(cli: &Cli, run_id: &str, device: Option<&str>, ask_before_epoch: bool) -> Result<()> {
    init_logging(true, Some(&RunDir::new(&cli.runs_dir, run_id).log_path()));
    crate::signals::install(None, || {});
    let opts = ExecuteOptions {
        runs_dir: &cli.runs_dir,
        data_dir: &cli.data_dir,
        device,
        ask_before_epoch,
        job: std::env::var("SLURM_JOB_ID").ok(),
    };
    match execute_run(&opts, run_id, &mut crate::train::NoObserver) {
        Ok(FinalStatus::Interrupted) => {
            crate::schedule::slurm::requeue_if_asked(run_id)?;
            Err(WorkerStopped.into())
        }
        Ok(_) => Ok(()),
        Err(e) if e.downcast_ref::<Busy>().is_some() => Err(WorkerBusy(e).into()),
        Err(e) => Err(e),
    }
}

/// Executes a registered run of `epochs` epochs here, recording it, and prints how it ended.
fn execute_here(cli: &Cli, run_id: &str, epochs: u32) -> Result<()> {
    let opts = ExecuteOptions {
        runs_dir: &cli.runs_dir,
        data_dir: &cli.data_dir,
        device: None,
        ask_before_epoch: false,
        job: None,
    };
    let mut display: Box<dyn crate::train::Observer> = if cli.quiet {
        Box::new(crate::train::NoObserver)
    } else {
        Box::new(TrainBar::new(epochs))
    };
    let status = execute_recorded(&opts, &cli.registry_path(), run_id, display.as_mut())?;
    let registry = Registry::open_read_only(&cli.registry_path())?;
    let row = registry
        .run(run_id)?
        .ok_or_else(|| anyhow::anyhow!("run {run_id} vanished"))?;
    match status {
        RunStatus::Completed => {
            let s = registry
                .summaries(&RunFilter::run(run_id))?
                .into_iter()
                .next()
                .ok_or_else(|| anyhow::anyhow!("run {run_id} has no summary"))?;
            println!("run {run_id} completed in {:.1} s", s.wall_seconds.unwrap_or(0.0));
            if let Some(b) = s.best {
                println!(
                    "  best epoch {}: test nll {:.4}  bpd {:.4}  bpd8 {:.4}",
                    b.epoch, b.nll, b.bpd, b.bpd8
                );
            }
            if let Some(v) = s.images_per_sec {
                println!(
                    "  {v:.1} images/s on {} ({})",
                    row.device.as_deref().unwrap_or("?"),
                    row.precision.unwrap_or(row.config.precision).as_str()
                );
            }
            let run = RunDir::new(&cli.runs_dir, run_id);
            let show = |rel: Option<&str>| rel.map_or("-".into(), |r| run.root.join(r).display().to_string());
            println!("  checkpoint {}", show(s.checkpoint.as_deref()));
            println!("  samples    {}", show(s.samples.as_deref()));
            Ok(())
        }
        RunStatus::Interrupted => Err(Interrupted(format!(
            "run {run_id} interrupted; `pixelx resume {run_id}` continues it"
        ))
        .into()),
        other => bail!(
            "run {run_id} {}: {}",
            other.as_str(),
            row.error.unwrap_or_default()
        ),
    }
}
