//! One run in one process: claim it in the registry, train (resuming from its newest intact
//! checkpoint), record everything, and leave the run in a final or resumable state.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context, Result};

use crate::device::{device_name, resolve_device};
use crate::registry::{Registry, RegistryObserver, RunStatus};
use crate::run_dir::RunDir;
use crate::train::{Diverged, Outcome, Trainer};

/// Where a worker finds things.
#[derive(Debug, Clone)]
pub struct WorkerContext<'a> {
    pub registry: &'a Path,
    pub data_dir: &'a Path,
    /// Device for this run; `None` uses the run's own `device` setting.
    pub device: Option<&'a str>,
    pub show_progress: bool,
}

/// Trains run `run_id` to its end (or until `stop`), recording into the registry. Returns the
/// status the run was left in. Errors of the run itself (bad data, divergence) are recorded in the
/// registry and returned as a status, not as an `Err`.
pub fn execute_run(ctx: &WorkerContext, run_id: &str, stop: &AtomicBool) -> Result<RunStatus> {
    let mut registry = Registry::open(ctx.registry)?;
    let row = registry
        .run(run_id)?
        .with_context(|| format!("no run `{run_id}` in {}", ctx.registry.display()))?;
    let device_choice = ctx.device.unwrap_or(&row.config.device).to_owned();
    if !registry.claim_run(run_id, &device_choice)? {
        bail!("run {run_id} is {}; nothing to do", row.status.as_str());
    }
    match train(
        registry,
        ctx,
        &row.run_dir,
        run_id,
        &row.config,
        &device_choice,
        stop,
    ) {
        Ok(status) => Ok(status),
        Err(e) => {
            let diverged = e.downcast_ref::<Diverged>().is_some();
            let status = if diverged {
                RunStatus::Diverged
            } else {
                RunStatus::Failed
            };
            tracing::error!("run {run_id} {}: {e:#}", status.as_str());
            Registry::open(ctx.registry)?.set_status(run_id, status, Some(&format!("{e:#}")))?;
            Ok(status)
        }
    }
}

fn train(
    mut registry: Registry,
    ctx: &WorkerContext,
    run_dir: &Path,
    run_id: &str,
    config: &crate::config::RunConfig,
    device_choice: &str,
    stop: &AtomicBool,
) -> Result<RunStatus> {
    let runs_root = run_dir.parent().unwrap_or(Path::new("."));
    let run = RunDir::create(runs_root, run_id, config)?;
    let device = resolve_device(device_choice)?;
    tracing::info!(run = run_id, device = device_name(device), "starting");
    let mut trainer = Trainer::resume(config.clone(), run, ctx.data_dir, device)?;
    trainer.show_progress = ctx.show_progress;
    // Anything recorded past the checkpoint we resume from will be recorded again.
    registry.truncate_run(run_id, trainer.state.epochs_done, trainer.state.global_step)?;
    let mut observer = RegistryObserver::new(registry, run_id);
    observer.replay(&trainer.state, &trainer.run)?;
    let outcome = trainer.run(&mut observer, stop);
    let mut registry = observer.finish()?;
    let status = match outcome? {
        Outcome::Completed => RunStatus::Completed,
        Outcome::Interrupted => RunStatus::Interrupted,
    };
    registry.set_status(run_id, status, None)?;
    Ok(status)
}

/// Installs the Ctrl-C / SIGTERM handler of a process that trains: the first signal raises
/// `stop` (training checkpoints and stops at the next step), a second exits at once.
pub fn install_stop_handler(stop: std::sync::Arc<AtomicBool>) {
    use std::sync::atomic::Ordering;
    let _ = ctrlc::set_handler(move || {
        if stop.swap(true, Ordering::SeqCst) {
            eprintln!("second interrupt: stopping now");
            std::process::exit(130);
        }
        eprintln!("interrupt: checkpointing and stopping (again to stop at once)");
    });
}
