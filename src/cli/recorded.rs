//! `pixelx train` and `pixelx resume` record the run they execute: this process claims it in the
//! registry, runs the worker's code ([`crate::execute`], which writes only the run folder) while
//! a thread ingests its journal, and leaves the registry complete. The worker side never opens
//! the registry; this command-line side does.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::device::{device_name, resolve_device};
use crate::execute::{execute_run, Busy, ExecuteOptions};
use crate::journal::{self, Event, FinalStatus};
use crate::registry::{Registry, RunStatus};
use crate::run_dir::RunDir;
use crate::signals;
use crate::train::Observer;

/// Claims run `run_id` in the registry, executes it here (`display` sees its training) while a
/// thread ingests its journal, and leaves the registry complete. A second stop signal records the
/// run as interrupted before the process exits.
pub fn execute_recorded(
    opts: &ExecuteOptions,
    registry_path: &Path,
    run_id: &str,
    display: &mut dyn Observer,
) -> Result<RunStatus> {
    let mut registry = Registry::open(registry_path)?;
    claim(&mut registry, opts, registry_path, run_id)?;
    let run_root = RunDir::new(opts.runs_dir, run_id).root;
    on_second_signal(registry_path, run_id, &run_root);
    let status = execute_ingesting(opts, registry_path, run_id, &run_root, display);
    let ingested = registry.ingest(run_id, &run_root)?;
    let status = match status {
        Ok(s) => RunStatus::from(s),
        Err(e) => {
            // Not taken (another process holds its folder) or not there: nothing was trained,
            // so the run goes back to a state the next `run`/`resume` picks up.
            let detail = format!("{e:#}");
            registry.set_status(run_id, RunStatus::Interrupted, Some(&detail))?;
            return Err(e);
        }
    };
    if ingested.finished.is_none()
        && registry
            .run(run_id)?
            .is_some_and(|r| r.status == RunStatus::Running)
    {
        registry.set_status(run_id, status, None)?;
    }
    Ok(status)
}

/// Moves the run to running for this process, on the device it will really use.
fn claim(registry: &mut Registry, opts: &ExecuteOptions, registry_path: &Path, run_id: &str) -> Result<()> {
    let device = opts.device.map(str::to_owned).unwrap_or_else(|| {
        registry
            .run(run_id)
            .ok()
            .flatten()
            .map_or_else(|| "auto".into(), |r| r.config.device)
    });
    // The device the run will really use (`auto` says nothing); the worker's start event
    // records the same, and a choice that does not resolve is the worker's error to report.
    let device = resolve_device(&device).map_or(device, device_name);
    if !registry.claim_run(run_id, &device, Some(std::process::id()))? {
        let row = registry
            .run(run_id)?
            .with_context(|| format!("no run `{run_id}` in {}", registry_path.display()))?;
        bail!(Busy {
            run: run_id.to_owned(),
            holder: row.holder()
        });
    }
    Ok(())
}

/// The first stop signal checkpoints (the trainer watches for it); the second ends the run
/// interrupted at once, recorded in its journal and the registry.
fn on_second_signal(registry_path: &Path, run_id: &str, run_root: &Path) {
    let (registry_path, run_id, root) = (registry_path.to_owned(), run_id.to_owned(), run_root.to_owned());
    signals::install(
        Some("interrupt: checkpointing and stopping (again to stop at once)"),
        move || {
            // The second signal: whatever the trainer was doing, the run ends interrupted.
            let _ = journal::append(
                &root,
                Event::Finished {
                    status: FinalStatus::Interrupted,
                    detail: Some("stopped at once (second signal)".into()),
                },
            );
            if let Ok(mut reg) = Registry::open(&registry_path) {
                let _ = reg.ingest(&run_id, &root);
            }
        },
    );
}

/// Executes the run while a thread ingests its journal every half second.
fn execute_ingesting(
    opts: &ExecuteOptions,
    registry_path: &Path,
    run_id: &str,
    run_root: &Path,
    display: &mut dyn Observer,
) -> Result<FinalStatus> {
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // The recording thread has its own connection: the registry's one writer is this
        // process, whose worker (this thread) only writes the journal.
        scope.spawn(|| {
            let mut pump = match Registry::open(registry_path) {
                Ok(r) => r,
                Err(e) => return tracing::warn!("recording run {run_id}: {e:#}"),
            };
            while !done.load(Ordering::SeqCst) {
                if let Err(e) = pump.ingest(run_id, run_root) {
                    tracing::warn!("recording run {run_id}: {e:#}");
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        let result = execute_run(opts, run_id, display);
        done.store(true, Ordering::SeqCst);
        result
    })
}
