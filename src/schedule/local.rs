//! The local backend: one `pixelx worker` process per run on this machine's device slots.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};

use super::backend::{Backend, Ended, Launch, Started};
use crate::config::{Devices, SchedulerSettings};
use crate::device::{parse_device, DeviceChoice};
use crate::run_dir::RunDir;

/// One place a run can execute, and the torch threads it gets there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub device: String,
    pub threads: usize,
}

/// Slots for the scheduler settings on a machine with `cuda_devices` GPUs and `cores` cores. CPU
/// slots share the cores evenly, so two runs side by side each get half. A GPU the machine does
/// not have is an error.
pub fn plan_slots(settings: &SchedulerSettings, cuda_devices: usize, cores: usize) -> Result<Vec<Slot>> {
    let check = |d: &str| -> Result<String> {
        match parse_device(d).with_context(|| format!("in `scheduler.devices`: {d}"))? {
            DeviceChoice::Cuda(n) if n >= cuda_devices => bail!(
                "`scheduler.devices`: device cuda:{n} requested but this machine has {cuda_devices} CUDA device(s)"
            ),
            DeviceChoice::Cuda(n) => Ok(format!("cuda:{n}")),
            DeviceChoice::Cpu => Ok("cpu".into()),
            DeviceChoice::Auto => bail!("`scheduler.devices`: `auto` cannot be one entry of a list"),
        }
    };
    let devices: Vec<String> = match &settings.devices {
        Devices::Named(name) => {
            match parse_device(name).with_context(|| format!("in `scheduler.devices`: {name}"))? {
                DeviceChoice::Auto if cuda_devices > 0 => {
                    (0..cuda_devices).map(|i| format!("cuda:{i}")).collect()
                }
                DeviceChoice::Auto | DeviceChoice::Cpu => vec!["cpu".into()],
                DeviceChoice::Cuda(_) => vec![check(name)?],
            }
        }
        Devices::List(list) if list.is_empty() => bail!("`scheduler.devices` is an empty list"),
        Devices::List(list) => list.iter().map(|d| check(d)).collect::<Result<_>>()?,
    };
    let per = settings.runs_per_device.max(1);
    let cpu_devices = devices.iter().filter(|d| d.as_str() == "cpu").count();
    let per_cpu = cpu_runs_per_device(per, cpu_devices, cores);
    let cpu_threads = (cores / (cpu_devices * per_cpu).max(1)).max(1);
    Ok(devices
        .iter()
        .flat_map(|d| {
            let (threads, n) = if d == "cpu" {
                (cpu_threads, per_cpu)
            } else {
                ((cores / 2).max(1), per)
            };
            std::iter::repeat_n(
                Slot {
                    device: d.clone(),
                    threads,
                },
                n,
            )
        })
        .collect())
}

/// Runs per CPU entry of `scheduler.devices`: as asked, but no more CPU slots in all than the
/// machine has cores. Slots beyond the cores would only share the same cores (each run slower,
/// none sooner) and make the estimate count cores that do not exist.
fn cpu_runs_per_device(per: usize, cpu_devices: usize, cores: usize) -> usize {
    if cpu_devices == 0 {
        return per;
    }
    per.min((cores.max(1) / cpu_devices).max(1))
}

/// The warning for a scheduler that asks for more CPU slots than the machine has cores (which
/// [`plan_slots`] caps); None when it does not.
pub fn cpu_slots_warning(settings: &SchedulerSettings, cuda_devices: usize, cores: usize) -> Option<String> {
    let cpu_devices = match &settings.devices {
        Devices::Named(name) => match parse_device(name) {
            Ok(DeviceChoice::Cpu) => 1,
            Ok(DeviceChoice::Auto) => usize::from(cuda_devices == 0),
            _ => 0,
        },
        Devices::List(list) => list
            .iter()
            .filter(|d| matches!(parse_device(d), Ok(DeviceChoice::Cpu)))
            .count(),
    };
    let per = settings.runs_per_device.max(1);
    let asked = cpu_devices * per;
    let used = cpu_devices * cpu_runs_per_device(per, cpu_devices, cores);
    (used < asked).then(|| {
        format!(
            "warning: {asked} CPU slots asked for (`scheduler.runs_per_device` = {per}), but this \
             machine has {cores} core{}: using {used} CPU slot{} (more would only share the same cores)",
            if cores == 1 { "" } else { "s" },
            if used == 1 { "" } else { "s" },
        )
    })
}

/// Paths the worker processes are started with.
#[derive(Debug, Clone)]
pub struct WorkerPaths {
    pub runs_dir: PathBuf,
    pub data_dir: PathBuf,
}

struct Running {
    run_id: String,
    child: Child,
    slot: usize,
}

pub struct LocalBackend {
    slots: Vec<Slot>,
    paths: WorkerPaths,
    running: Vec<Running>,
}

impl LocalBackend {
    pub fn new(slots: Vec<Slot>, paths: WorkerPaths) -> Self {
        Self {
            slots,
            paths,
            running: Vec::new(),
        }
    }

    fn spawn(&self, launch: &Launch, slot: &Slot) -> Result<Child> {
        let dir = RunDir::new(&self.paths.runs_dir, &launch.run_id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.worker_log_path())
            .with_context(|| format!("opening {}", dir.worker_log_path().display()))?;
        let exe = std::env::current_exe().context("locating the pixelx binary")?;
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(exe);
        command
            .arg("--runs-dir")
            .arg(&self.paths.runs_dir)
            .arg("--data-dir")
            .arg(&self.paths.data_dir)
            .arg("--threads")
            .arg(slot.threads.to_string())
            .arg("--quiet")
            .args(["worker", &launch.run_id, "--device", &slot.device])
            .args(launch.ask_before_epoch.then_some("--ask-before-epoch"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Own process group: a terminal's Ctrl-C reaches the coordinator only, which forwards
            // one interrupt, so workers checkpoint instead of seeing two signals and quitting.
            .process_group(0);
        // SAFETY: prctl(2) in the child between fork and exec touches no memory of the parent. It
        // asks the kernel to send SIGTERM when the coordinator dies, so no worker outlives it
        // unseen: the worker checkpoints, journals that it stopped, and the next `pixelx run`
        // continues it.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        command.spawn().context("starting a worker process")
    }
}

impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn start(&mut self, launch: &Launch) -> Result<Started> {
        let Some(free) = (0..self.slots.len()).find(|s| self.running.iter().all(|r| r.slot != *s)) else {
            bail!("no free slot for run {}", launch.run_id);
        };
        let child = self.spawn(launch, &self.slots[free])?;
        let started = Started {
            pid: Some(child.id()),
            job: None,
            device: self.slots[free].device.clone(),
        };
        self.running.push(Running {
            run_id: launch.run_id.clone(),
            child,
            slot: free,
        });
        Ok(started)
    }

    fn reap(&mut self) -> Result<Vec<Ended>> {
        let mut ended = Vec::new();
        let mut still = Vec::new();
        for mut r in self.running.drain(..) {
            match r.child.try_wait()? {
                None => still.push(r),
                Some(exit) => {
                    use std::os::unix::process::ExitStatusExt;
                    let cause = match (exit.code(), exit.signal()) {
                        (Some(code), _) => format!("exit code {code}"),
                        (None, Some(sig)) => format!("killed by signal {sig}"),
                        _ => exit.to_string(),
                    };
                    ended.push(Ended {
                        run_id: r.run_id,
                        cause,
                        busy: exit.code() == Some(crate::execute::BUSY_EXIT.into()),
                        cancelled: false,
                    });
                }
            }
        }
        self.running = still;
        Ok(ended)
    }

    fn whereabouts(&self, run_id: &str) -> Option<String> {
        self.running
            .iter()
            .find(|r| r.run_id == run_id)
            .map(|r| self.slots[r.slot].device.clone())
    }

    fn interrupt_all(&mut self) {
        for r in &self.running {
            // SAFETY: kill(2) with a pid we spawned and have not reaped; no memory is touched.
            unsafe {
                libc::kill(r.child.id() as i32, libc::SIGINT);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(devices: Devices, per: usize) -> SchedulerSettings {
        SchedulerSettings {
            devices,
            runs_per_device: per,
            ..SchedulerSettings::default()
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
    fn cpu_slots_are_capped_at_the_cores() {
        let s = plan_slots(&settings(Devices::Named("cpu".into()), 100_000), 0, 2).unwrap();
        assert_eq!(s.len(), 2);
        assert!(s.iter().all(|s| s.threads == 1));
        let warning = cpu_slots_warning(&settings(Devices::Named("cpu".into()), 100_000), 0, 2).unwrap();
        assert!(
            warning.contains("100000 CPU slots asked") && warning.contains("using 2"),
            "{warning}"
        );
        // Two CPU entries on two cores: one run each; within the cores, no warning.
        let two = Devices::List(vec!["cpu".into(), "cpu".into()]);
        assert_eq!(plan_slots(&settings(two.clone(), 3), 0, 2).unwrap().len(), 2);
        assert_eq!(cpu_slots_warning(&settings(two, 1), 0, 2), None);
        assert_eq!(
            cpu_slots_warning(&settings(Devices::Named("cpu".into()), 2), 0, 2),
            None
        );
        // GPU slots are not capped by the cores.
        let s = plan_slots(&settings(Devices::Named("cuda:0".into()), 8), 1, 2).unwrap();
        assert_eq!(s.len(), 8);
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
        let missing = plan_slots(&settings(Devices::List(vec!["cuda:7".into()]), 1), 0, 8).unwrap_err();
        assert!(missing.to_string().contains("0 CUDA device"), "{missing}");
    }
}
