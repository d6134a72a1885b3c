//! Where runs execute, and in what order: the slots an experiment's scheduler gives (local
//! device slots or Slurm jobs), how many runs are in flight at once, and the list scheduler that
//! hands runs to the slot that frees first. The coordinator ([`crate::schedule`]) runs on these
//! slots and the estimate ([`crate::estimate`]) times them; both import this module, not each
//! other.

use anyhow::{bail, Context, Result};

use crate::config::{BackendKind, Devices, Experiment, RunsPerDevice, SchedulerSettings};
use crate::device::{parse_device, DeviceChoice};

/// The kind of slot a run trains on, as far as its speed goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    Cpu { threads: usize },
    Cuda,
}

/// One place a run can execute: a local device slot (`cpu`, `cuda:0`) or a Slurm job (`slurm`),
/// and the torch threads it gets there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub device: String,
    pub threads: usize,
    /// It trains on a GPU.
    pub gpu: bool,
}

impl Slot {
    pub fn kind(&self) -> SlotKind {
        if self.gpu {
            SlotKind::Cuda
        } else {
            SlotKind::Cpu {
                threads: self.threads,
            }
        }
    }
}

/// The slots `experiment`'s scheduler uses, in its order, on a machine with `cuda_devices` GPUs
/// and `cores` cores: the local backend's device slots ([`plan_slots`]), or one per Slurm job in
/// flight, each taken as a node's worth of this machine (its cores, or `cpus_per_run` of them).
pub fn experiment_slots(
    experiment: &Experiment,
    cuda_devices: usize,
    cores: usize,
    workload: &Workload,
) -> Result<Vec<Slot>> {
    let s = &experiment.scheduler;
    Ok(match s.backend {
        BackendKind::Local => plan_slots(s, cuda_devices, cores, workload)?,
        BackendKind::Slurm => vec![
            Slot {
                device: "slurm".into(),
                threads: s.slurm.cpus_per_run.map_or(cores, |c| c as usize),
                gpu: s.slurm.gpus_per_run > 0,
            };
            s.slurm.max_jobs.max(1)
        ],
    })
}

/// Runs in flight at once on `slots` slots: all of them, or fewer when an adaptive search's
/// `search.parallel` says so (it proposes from what finished, so fewer at once search better).
pub fn capacity(experiment: &Experiment, slots: usize) -> usize {
    match experiment.search.parallel {
        Some(p) if experiment.search.method.is_adaptive() => p.min(slots).max(1),
        _ => slots,
    }
}

/// Assigns `runs` runs in order, each to the slot that frees first (the lowest-numbered among
/// equals, as the local backend picks; Slurm fills `max_jobs` alike), slot `i` being busy for
/// `busy[i]` seconds at first; `seconds(run, slot)` is a run's time on a slot. Returns each
/// run's slot and when the last slot frees.
pub fn assign(busy: &[f64], runs: usize, mut seconds: impl FnMut(usize, usize) -> f64) -> (Vec<usize>, f64) {
    let mut free: Vec<f64> = busy.iter().map(|b| b.max(0.0)).collect();
    if free.is_empty() {
        return (Vec::new(), 0.0);
    }
    let mut slots = Vec::with_capacity(runs);
    for run in 0..runs {
        let (slot, at) =
            free.iter().copied().enumerate().fold(
                (0, f64::INFINITY),
                |best, (i, t)| if t < best.1 { (i, t) } else { best },
            );
        free[slot] = at + seconds(run, slot).max(0.0);
        slots.push(slot);
    }
    (slots, free.iter().copied().fold(0.0, f64::max))
}

/// What a sweep will run, as far as packing CPU slots goes: how many runs it could keep in
/// flight, and the memory one of them needs at most (its process and its training step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    pub runs: usize,
    pub bytes_per_run: u64,
}

impl Workload {
    /// A workload that never limits packing: for callers that plan slots without a sweep.
    pub const UNBOUNDED: Workload = Workload {
        runs: usize::MAX,
        bytes_per_run: 0,
    };
}

/// Slots for the scheduler settings on a machine with `cuda_devices` GPUs and `cores` cores,
/// for `workload`. CPU slots share the cores evenly, so two runs side by side each get half. A
/// GPU the machine does not have is an error.
pub fn plan_slots(
    settings: &SchedulerSettings,
    cuda_devices: usize,
    cores: usize,
    workload: &Workload,
) -> Result<Vec<Slot>> {
    let devices = resolve_devices(&settings.devices, cuda_devices)?;
    let cpu_devices = devices.iter().filter(|d| d.as_str() == "cpu").count();
    let per_cpu = cpu_runs_per_device(settings.runs_per_device, cpu_devices, cores, workload);
    let per_gpu = match settings.runs_per_device {
        RunsPerDevice::Auto => 1,
        RunsPerDevice::Fixed(n) => n.max(1),
    };
    let cpu_threads = (cores / (cpu_devices * per_cpu).max(1)).max(1);
    Ok(devices
        .iter()
        .flat_map(|d| {
            let (threads, n) = if d == "cpu" {
                (cpu_threads, per_cpu)
            } else {
                ((cores / 2).max(1), per_gpu)
            };
            std::iter::repeat_n(
                Slot {
                    device: d.clone(),
                    threads,
                    gpu: d != "cpu",
                },
                n,
            )
        })
        .collect())
}

/// `scheduler.devices` as device names, one per entry (`auto`: every GPU, else the CPU).
fn resolve_devices(devices: &Devices, cuda_devices: usize) -> Result<Vec<String>> {
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
    match devices {
        Devices::Named(name) => {
            match parse_device(name).with_context(|| format!("in `scheduler.devices`: {name}"))? {
                DeviceChoice::Auto if cuda_devices > 0 => {
                    Ok((0..cuda_devices).map(|i| format!("cuda:{i}")).collect())
                }
                DeviceChoice::Auto | DeviceChoice::Cpu => Ok(vec!["cpu".into()]),
                DeviceChoice::Cuda(_) => Ok(vec![check(name)?]),
            }
        }
        Devices::List(list) if list.is_empty() => bail!("`scheduler.devices` is an empty list"),
        Devices::List(list) => list.iter().map(|d| check(d)).collect(),
    }
}

/// Runs per CPU entry of `scheduler.devices`. A number: as asked, but no more CPU slots in all
/// than the machine has cores (slots beyond the cores would only share the same cores, each run
/// slower and none sooner, and make the estimate count cores that do not exist). `auto`: one
/// per core, but no more slots than runs to fill them (a lone run gets every core's thread) or
/// than the machine's memory holds side by side.
fn cpu_runs_per_device(per: RunsPerDevice, cpu_devices: usize, cores: usize, workload: &Workload) -> usize {
    if cpu_devices == 0 {
        return 1;
    }
    let per_entry_cap = (cores.max(1) / cpu_devices).max(1);
    match per {
        RunsPerDevice::Fixed(n) => n.max(1).min(per_entry_cap),
        RunsPerDevice::Auto => {
            let by_runs = workload.runs.div_ceil(cpu_devices);
            let by_memory = match crate::host::usable_memory() {
                Some(total) if workload.bytes_per_run > 0 => {
                    (total / workload.bytes_per_run) as usize / cpu_devices
                }
                _ => usize::MAX,
            };
            per_entry_cap.min(by_runs).min(by_memory).max(1)
        }
    }
}

/// The warning for a scheduler that asks for more CPU slots than the machine has cores (which
/// [`plan_slots`] caps); None when it does not, or when it asks for `auto`.
pub fn cpu_slots_warning(settings: &SchedulerSettings, cuda_devices: usize, cores: usize) -> Option<String> {
    let RunsPerDevice::Fixed(per) = settings.runs_per_device else {
        return None;
    };
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
    let per = per.max(1);
    let asked = cpu_devices * per;
    let used =
        cpu_devices * cpu_runs_per_device(settings.runs_per_device, cpu_devices, cores, &Workload::UNBOUNDED);
    (used < asked).then(|| {
        format!(
            "warning: {asked} CPU slots asked for (`scheduler.runs_per_device` = {per}), but this \
             machine has {cores} core{}: using {used} CPU slot{} (more would only share the same cores)",
            if cores == 1 { "" } else { "s" },
            if used == 1 { "" } else { "s" },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(devices: Devices, per: usize) -> SchedulerSettings {
        SchedulerSettings {
            devices,
            runs_per_device: RunsPerDevice::Fixed(per),
            ..SchedulerSettings::default()
        }
    }

    #[test]
    fn cpu_slots_split_the_cores() {
        let s = plan_slots(
            &settings(Devices::Named("cpu".into()), 2),
            0,
            2,
            &Workload::UNBOUNDED,
        )
        .unwrap();
        assert_eq!(
            s,
            vec![
                Slot {
                    device: "cpu".into(),
                    threads: 1,
                    gpu: false
                };
                2
            ]
        );
        let s = plan_slots(
            &settings(Devices::Named("auto".into()), 1),
            0,
            2,
            &Workload::UNBOUNDED,
        )
        .unwrap();
        assert_eq!(
            s,
            vec![Slot {
                device: "cpu".into(),
                threads: 2,
                gpu: false
            }]
        );
    }

    #[test]
    fn cpu_slots_are_capped_at_the_cores() {
        let s = plan_slots(
            &settings(Devices::Named("cpu".into()), 100_000),
            0,
            2,
            &Workload::UNBOUNDED,
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert!(s.iter().all(|s| s.threads == 1));
        let warning = cpu_slots_warning(&settings(Devices::Named("cpu".into()), 100_000), 0, 2).unwrap();
        assert!(
            warning.contains("100000 CPU slots asked") && warning.contains("using 2"),
            "{warning}"
        );
        // Two CPU entries on two cores: one run each; within the cores, no warning.
        let two = Devices::List(vec!["cpu".into(), "cpu".into()]);
        assert_eq!(
            plan_slots(&settings(two.clone(), 3), 0, 2, &Workload::UNBOUNDED)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(cpu_slots_warning(&settings(two, 1), 0, 2), None);
        assert_eq!(
            cpu_slots_warning(&settings(Devices::Named("cpu".into()), 2), 0, 2),
            None
        );
        // GPU slots are not capped by the cores.
        let s = plan_slots(
            &settings(Devices::Named("cuda:0".into()), 8),
            1,
            2,
            &Workload::UNBOUNDED,
        )
        .unwrap();
        assert_eq!(s.len(), 8);
    }

    fn auto(devices: &str) -> SchedulerSettings {
        SchedulerSettings {
            devices: Devices::Named(devices.into()),
            ..SchedulerSettings::default()
        }
    }

    fn runs(n: usize) -> Workload {
        Workload {
            runs: n,
            bytes_per_run: 1 << 20,
        }
    }

    #[test]
    fn auto_packs_one_cpu_run_per_core_up_to_the_runs_and_the_memory() {
        let shape = |s: Vec<Slot>| (s.len(), s[0].threads);
        assert_eq!(auto("cpu").runs_per_device, RunsPerDevice::Auto, "the default");
        assert_eq!(shape(plan_slots(&auto("cpu"), 0, 2, &runs(4)).unwrap()), (2, 1));
        assert_eq!(shape(plan_slots(&auto("auto"), 0, 2, &runs(2)).unwrap()), (2, 1));
        // A lone run gets every core; three runs on eight cores get two threads each.
        assert_eq!(shape(plan_slots(&auto("cpu"), 0, 2, &runs(1)).unwrap()), (1, 2));
        assert_eq!(shape(plan_slots(&auto("cpu"), 0, 8, &runs(3)).unwrap()), (3, 2));
        // No more runs side by side than memory holds.
        if let Some(total) = crate::host::usable_memory() {
            let big = Workload {
                runs: 8,
                bytes_per_run: total / 2 + 1,
            };
            assert_eq!(shape(plan_slots(&auto("cpu"), 0, 8, &big).unwrap()), (1, 8));
        }
        // A GPU gets one run; asked numbers are kept; `auto` never warns.
        assert_eq!(plan_slots(&auto("auto"), 2, 16, &runs(10)).unwrap().len(), 2);
        assert_eq!(cpu_slots_warning(&auto("cpu"), 0, 2), None);
        assert_eq!(
            shape(plan_slots(&settings(Devices::Named("cpu".into()), 1), 0, 2, &runs(4)).unwrap()),
            (1, 2)
        );
    }

    #[test]
    fn auto_takes_every_gpu_and_lists_are_kept() {
        let s = plan_slots(
            &settings(Devices::Named("auto".into()), 2),
            3,
            16,
            &Workload::UNBOUNDED,
        )
        .unwrap();
        assert_eq!(s.len(), 6);
        assert_eq!(s[5].device, "cuda:2");
        let list = Devices::List(vec!["cuda:1".into(), "cpu".into()]);
        let s = plan_slots(&settings(list, 1), 2, 8, &Workload::UNBOUNDED).unwrap();
        assert_eq!(
            s.iter().map(|s| s.device.as_str()).collect::<Vec<_>>(),
            ["cuda:1", "cpu"]
        );
        assert!(plan_slots(
            &settings(Devices::List(vec!["gpu0".into()]), 1),
            2,
            8,
            &Workload::UNBOUNDED
        )
        .is_err());
        let missing = plan_slots(
            &settings(Devices::List(vec!["cuda:7".into()]), 1),
            0,
            8,
            &Workload::UNBOUNDED,
        )
        .unwrap_err();
        assert!(missing.to_string().contains("0 CUDA device"), "{missing}");
    }

    #[test]
    fn runs_go_to_the_slot_that_frees_first() {
        let times = [3.0, 3.0, 3.0];
        let (slots, end) = assign(&[0.0, 0.0], 3, |r, _| times[r]);
        assert_eq!((slots, end), (vec![0, 1, 0], 6.0));
        // A long run first keeps one slot; the short ones share the other.
        let times = [10.0, 2.0, 2.0, 2.0];
        let (slots, end) = assign(&[0.0, 0.0], 4, |r, _| times[r]);
        assert_eq!((slots, end), (vec![0, 1, 1, 1], 10.0));
        // Busy slots first finish what they run.
        let (slots, end) = assign(&[5.0, 1.0], 1, |_, _| 3.0);
        assert_eq!((slots, end), (vec![1], 5.0));
        // Slots of different speeds.
        let (_, end) = assign(&[0.0, 0.0], 2, |_, s| if s == 0 { 1.0 } else { 4.0 });
        assert_eq!(end, 4.0);
        assert_eq!(assign(&[], 3, |_, _| 1.0).1, 0.0);
    }

    fn load(text: &str) -> Experiment {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.toml");
        std::fs::write(
            &path,
            format!("[experiment]\nname = \"e\"\n[defaults]\nepochs = 2\n{text}"),
        )
        .unwrap();
        Experiment::load(&path, &[]).unwrap()
    }

    fn experiment(extra: &str) -> Experiment {
        load(&format!("[grid]\nseed = [1, 2, 3]\n{extra}"))
    }

    #[test]
    fn slurm_jobs_are_slots_like_this_machine() {
        let e = experiment(
            "[scheduler]\nbackend = \"slurm\"\n[scheduler.slurm]\nmax_jobs = 4\ncpus_per_run = 3\n",
        );
        let jobs = experiment_slots(&e, 0, 2, &Workload::UNBOUNDED).unwrap();
        assert_eq!(jobs.len(), 4);
        assert!(jobs.iter().all(|s| s.kind() == SlotKind::Cpu { threads: 3 }));
        let gpu = experiment("[scheduler]\nbackend = \"slurm\"\n[scheduler.slurm]\ngpus_per_run = 1\n");
        assert_eq!(
            experiment_slots(&gpu, 0, 2, &Workload::UNBOUNDED).unwrap()[0].kind(),
            SlotKind::Cuda
        );
        let local = experiment("[scheduler]\ndevices = [\"cpu\", \"cpu\"]\n");
        assert_eq!(
            experiment_slots(&local, 0, 2, &Workload::UNBOUNDED)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn search_parallel_caps_the_runs_in_flight_of_a_study_only() {
        let grid = experiment("[search]\nparallel = 1\n");
        assert_eq!(capacity(&grid, 4), 4, "a grid ignores `parallel`");
        let e = load("[search]\nmethod = \"random\"\ntrials = 4\nparallel = 2\n[search.space]\nseed = { int = [1, 9] }\n");
        assert_eq!(capacity(&e, 4), 2);
        assert_eq!(capacity(&e, 1), 1, "no more than the slots");
    }

    /// The estimate and the coordinator share slots through this module, not through each
    /// other: neither names the other in its imports.
    #[test]
    fn estimate_and_schedule_do_not_import_each_other() {
        let estimate = [
            include_str!("estimate/mod.rs"),
            include_str!("estimate/plan.rs"),
            include_str!("estimate/text.rs"),
            include_str!("estimate/history.rs"),
            include_str!("estimate/calibrate.rs"),
        ];
        let schedule = [
            include_str!("schedule/mod.rs"),
            include_str!("schedule/observer.rs"),
            include_str!("schedule/options.rs"),
            include_str!("schedule/backend.rs"),
            include_str!("schedule/local.rs"),
            include_str!("schedule/study.rs"),
            include_str!("schedule/coordinator/mod.rs"),
            include_str!("schedule/coordinator/state.rs"),
            include_str!("schedule/coordinator/prepare.rs"),
            include_str!("schedule/coordinator/ingest.rs"),
            include_str!("schedule/coordinator/reap.rs"),
            include_str!("schedule/coordinator/fill.rs"),
        ];
        let names = |module: &str| ["crate", "::", module].concat();
        assert!(estimate.iter().all(|s| !s.contains(&names("schedule"))));
        assert!(schedule.iter().all(|s| !s.contains(&names("estimate"))));
    }
}
