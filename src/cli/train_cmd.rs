//! `pixelx train`, `pixelx resume` and the hidden `pixelx worker`: one run, in this process,
//! recorded in the registry like any run of an experiment.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Result};

use super::{init_logging, Cli, TrainArgs};
use crate::config::{ExperimentInfo, RunConfig};
use crate::registry::{Registry, RunStatus};
use crate::run_dir::{adhoc_run_id, RunDir};
use crate::schedule::worker::{execute_run, install_stop_handler, WorkerContext};
use crate::schedule::STALE_AFTER;

/// The experiment that runs started with `pixelx train` belong to.
pub const ADHOC_EXPERIMENT: &str = "adhoc";

pub fn train(cli: &Cli, args: &TrainArgs) -> Result<()> {
    let config = args.apply(RunConfig::default());
    config.validate()?;
    crate::device::resolve_device(&config.device)?;
    // Missing data is reported before anything is recorded, so no failed run is left behind.
    crate::data::check_available(&config.dataset, &cli.data_dir)?;
    let id = adhoc_run_id(&config);
    let mut registry = Registry::open(&cli.registry_path())?;
    let info = ExperimentInfo {
        name: ADHOC_EXPERIMENT.into(),
        description: "runs started with `pixelx train`".into(),
        dataset: None,
    };
    let experiment = registry.upsert_experiment(&info, None)?;
    let run = RunDir::create(&cli.runs_dir, &id, &config)?;
    registry.add_run(experiment, &id, &config, &run.root)?;
    drop(registry);
    init_logging(cli.quiet, Some(&run.log_path()));
    println!("run {id}  ->  {}", run.root.display());
    execute(cli, &id, None)
}

pub fn resume(cli: &Cli, run_id: &str) -> Result<()> {
    let mut registry = Registry::open(&cli.registry_path())?;
    let id = resolve_run_id(&registry, run_id)?;
    registry.recover_stale(STALE_AFTER)?;
    let row = registry.run(&id)?.expect("resolved ids exist");
    match row.status {
        RunStatus::Completed => {
            println!("run {id} is already complete");
            return Ok(());
        }
        RunStatus::Running => bail!("run {id} is running (pid {:?} on {:?})", row.pid, row.host),
        RunStatus::Diverged => {
            registry.set_status(&id, RunStatus::Interrupted, Some("resumed after divergence"))?;
        }
        _ => {}
    }
    drop(registry);
    init_logging(cli.quiet, Some(&RunDir::new(&cli.runs_dir, &id).log_path()));
    println!("run {id} resumes from its last checkpoint");
    execute(cli, &id, None)
}

/// The hidden subcommand the scheduler starts, one per run.
pub fn worker(cli: &Cli, run_id: &str, device: &str) -> Result<()> {
    init_logging(true, Some(&RunDir::new(&cli.runs_dir, run_id).log_path()));
    execute(cli, run_id, Some(device))
}

fn execute(cli: &Cli, run_id: &str, device: Option<&str>) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    install_stop_handler(stop.clone());
    let registry_path = cli.registry_path();
    let ctx = WorkerContext {
        registry: &registry_path,
        data_dir: &cli.data_dir,
        device,
        show_progress: !cli.quiet,
    };
    let status = execute_run(&ctx, run_id, &stop)?;
    let registry = Registry::open(&registry_path)?;
    let row = registry.run(run_id)?.expect("the run exists");
    let summary = registry
        .summaries(&crate::registry::RunFilter::run(run_id))?
        .into_iter()
        .next();
    match status {
        RunStatus::Completed => {
            let s = summary.expect("a completed run has a summary");
            println!("run {run_id} completed in {:.1} s", s.wall_seconds.unwrap_or(0.0));
            if let Some(b) = s.best {
                println!(
                    "  best epoch {}: test nll {:.4}  bpd {:.4}  bpd8 {:.4}",
                    b.epoch, b.nll, b.bpd, b.bpd8
                );
            }
            if let Some(v) = s.images_per_sec {
                let precision = s
                    .params
                    .get("precision")
                    .and_then(|p| p.as_str())
                    .unwrap_or("fp32");
                println!(
                    "  {v:.1} images/s on {} ({precision})",
                    row.device.as_deref().unwrap_or("?")
                );
            }
            println!("  checkpoint {}", s.checkpoint.as_deref().unwrap_or("-"));
            println!("  samples    {}", s.samples.as_deref().unwrap_or("-"));
            Ok(())
        }
        RunStatus::Interrupted => {
            println!("run {run_id} interrupted; `pixelx resume {run_id}` continues it");
            Ok(())
        }
        other => bail!(
            "run {run_id} {}: {}",
            other.as_str(),
            row.error.unwrap_or_default()
        ),
    }
}

/// Accepts a full run id or an unambiguous prefix of one.
pub fn resolve_run_id(registry: &Registry, given: &str) -> Result<String> {
    let found = registry.find_runs(given)?;
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no run `{given}` in {}", registry.path.display()),
        many => bail!("`{given}` matches {} runs: {}", many.len(), many.join(", ")),
    }
}
