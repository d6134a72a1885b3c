//! Spreading an experiment's runs over device slots, one worker process per run.
//!
//! The scheduler owns no training state: it queues runs in the registry, starts a hidden
//! `pixelx worker RUN_ID` process per free slot, and watches them. Workers record their own
//! progress, so killing the scheduler loses nothing, and running the experiment again picks up
//! whatever is unfinished (runs left `running` by a dead worker are detected by pid and heartbeat).

mod progress;
pub mod worker;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::config::{Devices, Experiment, SchedulerSettings};
use crate::device::{cuda_device_count, parse_device, DeviceChoice};
use crate::registry::{Registry, RunStatus};
use crate::run_dir::RunDir;

/// Heartbeats older than this mark a run on another host as abandoned.
pub const STALE_AFTER: Duration = Duration::from_secs(120);

/// One place a run can execute, and the torch threads it gets there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub device: String,
    pub threads: usize,
}

/// Slots for the scheduler settings on a machine with `cuda_devices` GPUs and `cores` cores. CPU
/// slots share the cores evenly, so two runs side by side each get half.
pub fn plan_slots(settings: &SchedulerSettings, cuda_devices: usize, cores: usize) -> Result<Vec<Slot>> {
    let devices: Vec<String> = match &settings.devices {
        Devices::Named(name) => match parse_device(name)? {
            DeviceChoice::Auto if cuda_devices > 0 => {
                (0..cuda_devices).map(|i| format!("cuda:{i}")).collect()
            }
            DeviceChoice::Auto | DeviceChoice::Cpu => vec!["cpu".into()],
            DeviceChoice::Cuda(i) => vec![format!("cuda:{i}")],
        },
        Devices::List(list) if list.is_empty() => bail!("`scheduler.devices` is an empty list"),
        Devices::List(list) => {
            for d in list {
                parse_device(d).with_context(|| format!("in `scheduler.devices`: {d}"))?;
            }
            list.clone()
        }
    };
    let per = settings.runs_per_device.max(1);
    let cpu_slots = devices.iter().filter(|d| d.as_str() == "cpu").count() * per;
    let cpu_threads = (cores / cpu_slots.max(1)).max(1);
    Ok(devices
        .iter()
        .flat_map(|d| {
            let threads = if d == "cpu" {
                cpu_threads
            } else {
                (cores / 2).max(1)
            };
            std::iter::repeat_n(
                Slot {
                    device: d.clone(),
                    threads,
                },
                per,
            )
        })
        .collect())
}

/// How `pixelx run` was asked to behave.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    pub runs_dir: PathBuf,
    pub data_dir: PathBuf,
    pub registry: PathBuf,
    pub force: bool,
    pub quiet: bool,
}

/// Counts of how a sweep's runs ended.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepSummary {
    pub completed: usize,
    pub skipped: usize,
    pub failed: usize,
    pub diverged: usize,
    pub interrupted: usize,
}

struct Running {
    run_id: String,
    child: Child,
    slot: usize,
}

/// Queues every run of `experiment` and trains the unfinished ones over the slots.
pub fn run_experiment(experiment: &Experiment, opts: &SweepOptions) -> Result<SweepSummary> {
    let slots = plan_slots(&experiment.scheduler, cuda_device_count(), num_cores())?;
    let mut registry = Registry::open(&opts.registry)?;
    let experiment_id = registry.upsert_experiment(&experiment.info, Some(&experiment.file))?;
    for id in registry.recover_stale(STALE_AFTER)? {
        tracing::warn!("run {id} was left running by a process that is gone; it will continue");
    }
    let mut summary = SweepSummary::default();
    let mut queue = VecDeque::new();
    for spec in &experiment.runs {
        let dir = RunDir::new(&opts.runs_dir, &spec.id);
        let status = registry.add_run(experiment_id, &spec.id, &spec.config, &dir.root)?;
        if opts.force && status != RunStatus::Running {
            registry.reset_run(&spec.id)?;
            let _ = std::fs::remove_dir_all(&dir.root);
            queue.push_back(spec.id.clone());
        } else if status.is_unfinished() {
            queue.push_back(spec.id.clone());
        } else {
            summary.skipped += 1;
        }
    }
    drop(registry);

    let stop = Arc::new(AtomicBool::new(false));
    let stop_now = Arc::new(AtomicBool::new(false));
    {
        let (stop, stop_now) = (stop.clone(), stop_now.clone());
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                stop_now.store(true, Ordering::SeqCst);
            }
        });
    }
    let mut progress = progress::SweepProgress::new(experiment.runs.len(), summary.skipped, opts.quiet);
    let mut running: Vec<Running> = Vec::new();
    let mut attempts: std::collections::HashMap<String, u32> = Default::default();
    let mut interrupt_sent = false;
    loop {
        if stop_now.load(Ordering::SeqCst) {
            for r in &mut running {
                let _ = r.child.kill();
            }
        } else if stop.load(Ordering::SeqCst) && !interrupt_sent {
            for r in &running {
                signal(&r.child, libc::SIGINT);
            }
            interrupt_sent = true;
        }
        while !stop.load(Ordering::SeqCst) {
            let Some(free) = (0..slots.len()).find(|s| running.iter().all(|r| r.slot != *s)) else {
                break;
            };
            let Some(run_id) = queue.pop_front() else { break };
            let child = spawn_worker(&run_id, &slots[free], opts)?;
            progress.started(&run_id, &slots[free].device);
            running.push(Running {
                run_id,
                child,
                slot: free,
            });
        }
        let mut still = Vec::new();
        for mut r in running.drain(..) {
            match r.child.try_wait()? {
                None => still.push(r),
                Some(exit) => {
                    let status = settle(&opts.registry, &r.run_id, exit)?;
                    let tries = attempts.entry(r.run_id.clone()).or_default();
                    if status == RunStatus::Failed
                        && *tries < experiment.scheduler.retries
                        && !stop.load(Ordering::SeqCst)
                    {
                        *tries += 1;
                        tracing::warn!(
                            "run {} failed; retrying ({}/{})",
                            r.run_id,
                            tries,
                            experiment.scheduler.retries
                        );
                        queue.push_back(r.run_id.clone());
                    } else {
                        match status {
                            RunStatus::Completed => summary.completed += 1,
                            RunStatus::Diverged => summary.diverged += 1,
                            RunStatus::Interrupted | RunStatus::Running | RunStatus::Queued => {
                                summary.interrupted += 1
                            }
                            RunStatus::Failed => summary.failed += 1,
                        }
                    }
                    progress.finished(&r.run_id, status);
                }
            }
        }
        running = still;
        if running.is_empty() && (queue.is_empty() || stop.load(Ordering::SeqCst)) {
            break;
        }
        progress.refresh(&opts.registry, running.iter().map(|r| r.run_id.as_str()));
        std::thread::sleep(Duration::from_millis(200));
    }
    summary.interrupted += queue.len();
    progress.done();
    Ok(summary)
}

/// The status a finished worker left its run in; a worker that died without saying is `failed`.
fn settle(registry: &Path, run_id: &str, exit: std::process::ExitStatus) -> Result<RunStatus> {
    let mut reg = Registry::open(registry)?;
    let row = reg
        .run(run_id)?
        .with_context(|| format!("run {run_id} vanished from the registry"))?;
    if row.status == RunStatus::Running {
        let why = format!(
            "worker exited without finishing ({exit}); see {}/worker.log",
            row.run_dir.display()
        );
        reg.set_status(run_id, RunStatus::Failed, Some(&why))?;
        return Ok(RunStatus::Failed);
    }
    Ok(row.status)
}

fn spawn_worker(run_id: &str, slot: &Slot, opts: &SweepOptions) -> Result<Child> {
    let dir = RunDir::new(&opts.runs_dir, run_id);
    std::fs::create_dir_all(&dir.root).with_context(|| format!("creating {}", dir.root.display()))?;
    let log = std::fs::File::create(dir.root.join("worker.log"))?;
    let exe = std::env::current_exe().context("locating the pixelx binary")?;
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(exe);
    command
        .arg("--runs-dir")
        .arg(&opts.runs_dir)
        .arg("--data-dir")
        .arg(&opts.data_dir)
        .arg("--threads")
        .arg(slot.threads.to_string())
        .arg("--quiet")
        .args(["worker", run_id, "--device", &slot.device, "--registry"])
        .arg(&opts.registry)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Own process group: a terminal's Ctrl-C reaches the scheduler only, which forwards one
        // interrupt, so workers checkpoint instead of seeing two signals and quitting.
        .process_group(0);
    // SAFETY: prctl(2) in the child between fork and exec touches no memory of the parent. It
    // asks the kernel to send SIGTERM when the scheduler dies, so no worker outlives it unseen:
    // the worker checkpoints, marks its run interrupted, and the next `pixelx run` continues it.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let child = command.spawn().context("starting a worker process")?;
    Ok(child)
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) with a pid we spawned and have not reaped; no memory is touched.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

pub fn num_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(devices: Devices, per: usize) -> SchedulerSettings {
        SchedulerSettings {
            devices,
            runs_per_device: per,
            retries: 0,
        }
    }

    #[test]
    fn cpu_slots_split_the_cores() {
        let s = plan_slots(&settings(Devices::Named("cpu".into()), 2), 0, 2).unwrap();
        assert_eq!(
            s,
            vec![
                Slot {
                    device: "cpu".into(),
                    threads: 1
                };
                2
            ]
        );
        let s = plan_slots(&settings(Devices::Named("auto".into()), 1), 0, 2).unwrap();
        assert_eq!(
            s,
            vec![Slot {
                device: "cpu".into(),
                threads: 2
            }]
        );
    }

    #[test]
    fn auto_takes_every_gpu_and_lists_are_kept() {
        let s = plan_slots(&settings(Devices::Named("auto".into()), 2), 3, 16).unwrap();
        assert_eq!(s.len(), 6);
        assert_eq!(s[5].device, "cuda:2");
        let list = Devices::List(vec!["cuda:1".into(), "cpu".into()]);
        let s = plan_slots(&settings(list, 1), 2, 8).unwrap();
        assert_eq!(
            s.iter().map(|s| s.device.as_str()).collect::<Vec<_>>(),
            ["cuda:1", "cpu"]
        );
        assert!(plan_slots(&settings(Devices::List(vec!["gpu0".into()]), 1), 2, 8).is_err());
    }
}
