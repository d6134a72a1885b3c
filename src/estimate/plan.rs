//! An experiment's estimate: the slots it would use, the work of its runs (less what the registry
//! says is done), their speeds (history, else calibration), and the schedule over the slots.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::calibrate::{self, Job};
use super::{history, Arch, Measured, RunEstimate, RunWork, Source, SpeedReport, Speeds, SweepEstimate};
use crate::config::{BackendKind, Experiment, RunConfig};
use crate::registry::{Registry, RunFilter, RunStatus};
use crate::slots::{self, assign, Slot, SlotKind};

/// After this long, architectures still untimed are scaled from those timed (a loaded machine
/// would otherwise stretch the calibration; a sweep's own should take well under it).
const CALIBRATION_LIMIT: Duration = Duration::from_secs(15);

/// How to estimate.
#[derive(Debug, Clone)]
pub struct EstimateOptions {
    /// The registry whose history and run states count (opened read-only; none is fine).
    pub registry: PathBuf,
    /// Time architectures that history does not cover.
    pub calibrate: bool,
    /// `--force`: finished runs train again.
    pub force: bool,
    /// Say on stderr what is being timed, before the seconds it takes.
    pub announce: bool,
}

/// The slots the scheduler would use, in its order, as many as it would fill at once, with
/// `finished` runs of the experiment done already.
fn slots(experiment: &Experiment, finished: usize) -> Result<Vec<Slot>> {
    let mut slots = slots::experiment_slots(
        experiment,
        crate::device::cuda_device_count(),
        crate::host::num_cores(),
        &crate::train::memory::workload(experiment, finished),
    )?;
    slots.truncate(slots::capacity(experiment, slots.len()));
    Ok(slots)
}

/// Where a run of the experiment stands in the registry.
#[derive(Debug, Clone)]
struct RunState {
    status: RunStatus,
    /// Epochs with recorded results.
    trained: u32,
    config: RunConfig,
    /// A trial of an adaptive search.
    trial: bool,
}

/// Every run of `experiment` the registry holds, with the config it trains in: its stored one, at
/// the precision it started in (under `force` every run starts afresh, so that no longer holds).
fn states(registry: Option<&Registry>, experiment: &str, force: bool) -> Result<HashMap<String, RunState>> {
    let Some(registry) = registry else {
        return Ok(HashMap::new());
    };
    let filter = RunFilter {
        experiment: Some(experiment.to_owned()),
        ..RunFilter::default()
    };
    let mut out = HashMap::new();
    for s in registry.summaries(&filter)? {
        let Ok(mut config) = serde_json::from_value::<RunConfig>(serde_json::Value::Object(s.params.clone()))
        else {
            continue;
        };
        // A started run goes on in the precision it started in, whatever `auto` would pick now.
        let used = s
            .precision_used
            .as_deref()
            .and_then(crate::precision::Precision::parse);
        if let Some(used) = used.filter(|_| !force) {
            config.precision = used;
        }
        let state = RunState {
            status: s.status,
            trained: s.curves.epochs.len() as u32,
            config,
            trial: s.trial.is_some(),
        };
        out.insert(s.id, state);
    }
    Ok(out)
}

/// Epochs of a run already trained, as the coordinator will count them: finished runs are done
/// (unless forced), unfinished ones continue where they stopped.
fn epochs_done(state: Option<&RunState>, epochs: u32, force: bool) -> u32 {
    let Some(s) = state else { return 0 };
    // An invalid trial of a study is settled without training: nothing left to do.
    if crate::census::is_invalid(&s.config) {
        return epochs;
    }
    match s.status {
        RunStatus::Running => s.trained,
        _ if force => 0,
        RunStatus::Queued => 0,
        status if status.is_unfinished() => s.trained,
        _ => epochs,
    }
}

/// The work of every run the sweep would train.
fn work(experiment: &Experiment, registry: Option<&Registry>, force: bool) -> Result<Vec<RunWork>> {
    let e = experiment;
    let states = states(registry, &e.info.name, force)?;
    if !e.search.method.is_adaptive() {
        return Ok(e
            .runs
            .iter()
            .map(|r| {
                // The coordinator trains a registered run from its stored config: a run registered
                // before `auto` existed stays fp32 though the file now reads as `auto`.
                let config = states.get(&r.id).map_or(&r.config, |s| &s.config);
                let done = epochs_done(states.get(&r.id), config.epochs, force);
                RunWork::of(Some(r.id.clone()), config, done)
            })
            .collect());
    }
    // Trials proposed so far, then the rest of the budget at the base configuration.
    let mut out: Vec<RunWork> = states
        .iter()
        .filter(|(_, s)| s.trial)
        .map(|(id, s)| {
            RunWork::of(
                Some(id.clone()),
                &s.config,
                epochs_done(Some(s), s.config.epochs, force),
            )
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    let mut left = e.search.trials.unwrap_or(0).saturating_sub(out.len());
    // A space of few configurations ends the study once each valid one is tried.
    if let Some(valid) = crate::census::census(e, false).and_then(|c| c.valid_ids) {
        let untried = valid.iter().filter(|id| !states.contains_key(*id)).count();
        left = left.min(untried);
    }
    out.extend((0..left).map(|_| RunWork::of(None, &e.base, 0)));
    Ok(out)
}

/// Opens the registry for reading, if there is one: a missing registry just means no history.
fn open_registry(opts: &EstimateOptions) -> Option<Registry> {
    if !opts.registry.is_file() {
        return None;
    }
    match Registry::open_read_only(&opts.registry) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!("estimating without history: {e:#}");
            None
        }
    }
}

/// An architecture to measure on a kind of slot, and the largest sample grid its runs draw.
type Wanted = (Arch, SlotKind, i64);

/// Speeds the registry's completed runs give for what is wanted.
fn from_history(
    registry: &Registry,
    wanted: &[Wanted],
    slurm: bool,
    speeds: &mut Speeds,
    report: &mut SpeedReport,
) -> Result<()> {
    // A CPU's speed is this machine's; GPUs of a cluster are taken as alike.
    let host = (!slurm).then(crate::host::hostname);
    let records = registry.speed_records()?;
    let pairs: Vec<(Arch, SlotKind)> = wanted.iter().map(|(a, k, _)| (*a, *k)).collect();
    for m in history::speeds(&records, &pairs, host.as_deref()) {
        if let Source::History { runs } = m.source {
            report.from_history += 1;
            report.history_runs += runs;
        }
        speeds.insert(m);
    }
    Ok(())
}

/// Times what history did not cover, kind of slot by kind of slot.
fn from_calibration(
    missing: &[Wanted],
    slots: &[Slot],
    slurm: bool,
    announce: bool,
    speeds: &mut Speeds,
    report: &mut SpeedReport,
) {
    if announce {
        let n = missing.len();
        eprintln!(
            "estimating: timing {n} architecture{} without history (a few seconds each at most; \
             --no-calibrate skips it)",
            if n == 1 { "" } else { "s" }
        );
    }
    let started = Instant::now();
    let deadline = started + CALIBRATION_LIMIT;
    let mut kinds: Vec<SlotKind> = Vec::new();
    for m in missing {
        if !kinds.contains(&m.1) {
            kinds.push(m.1);
        }
    }
    for kind in kinds {
        let jobs: Vec<Job> = missing
            .iter()
            .filter(|(_, k, _)| *k == kind)
            .map(|&(arch, _, epoch_samples)| Job { arch, epoch_samples })
            .collect();
        match calibrate_kind(&jobs, kind, slots, slurm, deadline) {
            Ok(timed) => {
                for t in timed {
                    report.calibrated += 1;
                    report.extrapolated += usize::from(t.extrapolated);
                    if !t.extrapolated {
                        let (lo, hi) = report.calibration_batches.unwrap_or((t.batch, t.batch));
                        report.calibration_batches = Some((lo.min(t.batch), hi.max(t.batch)));
                    }
                    speeds.insert(Measured {
                        arch: t.arch,
                        kind,
                        speed: t.speed,
                        source: Source::Calibrated {
                            batch: t.batch,
                            steps: t.steps,
                        },
                    });
                }
            }
            Err(e) => report.notes.push(format!("{e:#}")),
        }
    }
    report.calibration_seconds = started.elapsed().as_secs_f64();
}

/// Estimates what `experiment` costs on the slots its scheduler would use.
pub fn estimate(experiment: &Experiment, opts: &EstimateOptions) -> Result<SweepEstimate> {
    let registry = open_registry(opts);
    let finished = match &registry {
        Some(r) if !opts.force => r.finished_count(&experiment.info.name)?,
        _ => 0,
    };
    let slots = slots(experiment, finished)?;
    let slurm = experiment.scheduler.backend == BackendKind::Slurm;
    let runs = work(experiment, registry.as_ref(), opts.force)?;
    let mut wanted: Vec<Wanted> = Vec::new();
    for w in runs.iter().filter(|w| w.epochs_left > 0) {
        for slot in &slots {
            let arch = w.arch.on(slot.kind());
            match wanted
                .iter_mut()
                .find(|(a, k, _)| *a == arch && *k == slot.kind())
            {
                Some(entry) => entry.2 = entry.2.max(w.epoch_samples),
                None => wanted.push((arch, slot.kind(), w.epoch_samples)),
            }
        }
    }
    let mut speeds = Speeds::default();
    let mut report = SpeedReport::default();
    if let Some(registry) = &registry {
        from_history(registry, &wanted, slurm, &mut speeds, &mut report)?;
    }
    let missing: Vec<Wanted> = wanted
        .iter()
        .copied()
        .filter(|(a, k, _)| speeds.get(a, *k).is_none())
        .collect();
    if !missing.is_empty() && opts.calibrate {
        from_calibration(&missing, &slots, slurm, opts.announce, &mut speeds, &mut report);
    }
    report.skipped = !opts.calibrate && !missing.is_empty();
    report.missing = wanted
        .iter()
        .filter(|(a, k, _)| speeds.get(a, *k).is_none())
        .count();
    Ok(assemble(experiment, runs, slots, slurm, &speeds, report))
}

/// Times `jobs` on slots of `kind`: CPU architectures side by side on as many lanes as the sweep
/// has CPU slots (so each is timed with its neighbours busy, as the sweep will run it), GPUs on
/// the first one.
fn calibrate_kind(
    jobs: &[Job],
    kind: SlotKind,
    slots: &[Slot],
    slurm: bool,
    deadline: Instant,
) -> Result<Vec<calibrate::Timed>> {
    match kind {
        SlotKind::Cpu { threads } => {
            let lanes = if slurm {
                1
            } else {
                let cpu_slots = slots.iter().filter(|s| s.kind() == kind).count();
                cpu_slots.min(crate::host::num_cores() / threads.max(1)).max(1)
            };
            calibrate::calibrate(jobs, kind, tch::Device::Cpu, lanes, deadline)
        }
        SlotKind::Cuda => {
            let device = slots
                .iter()
                .find_map(|s| crate::device::resolve_device(&s.device).ok())
                .filter(|d| d.is_cuda())
                .or_else(|| (crate::device::cuda_device_count() > 0).then_some(tch::Device::Cuda(0)));
            let Some(device) = device else {
                anyhow::bail!("no CUDA device here to time the GPU slots on (and no history of them)");
            };
            calibrate::calibrate(jobs, kind, device, 1, deadline)
        }
    }
}

/// Schedules the pending runs over the slots and puts the estimate together.
fn assemble(
    experiment: &Experiment,
    runs: Vec<RunWork>,
    slots: Vec<Slot>,
    slurm: bool,
    speeds: &Speeds,
    report: SpeedReport,
) -> SweepEstimate {
    let pending: Vec<usize> = (0..runs.len()).filter(|&i| runs[i].epochs_left > 0).collect();
    let speed = |run: &RunWork, slot: usize| speeds.get(&run.arch, slots[slot].kind()).map(|m| m.speed);
    let complete = pending
        .iter()
        .all(|&i| (0..slots.len()).all(|s| speed(&runs[i], s).is_some()));
    let busy = vec![0.0; slots.len()];
    let (assigned, total) = assign(&busy, pending.len(), |p, s| {
        speed(&runs[pending[p]], s).map_or(0.0, |sp| sp.run_seconds(&runs[pending[p]]))
    });
    let mut slot_of: HashMap<usize, usize> = HashMap::new();
    for (p, &s) in pending.iter().zip(&assigned) {
        slot_of.insert(*p, s);
    }
    let estimates = runs
        .into_iter()
        .enumerate()
        .map(|(i, work)| {
            let s = speed(&work, slot_of.get(&i).copied().unwrap_or(0));
            RunEstimate {
                seconds: s.map(|sp| sp.run_seconds(&work)),
                speed: s,
                work,
            }
        })
        .collect();
    SweepEstimate {
        experiment: experiment.info.name.clone(),
        runs: estimates,
        slots,
        backend_slurm: slurm,
        trials: experiment
            .search
            .method
            .is_adaptive()
            .then(|| experiment.search.trials.unwrap_or(0)),
        upper_bound: experiment.pruner.is_active(),
        total_seconds: complete.then_some(total),
        speeds: report,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment(extra: &str) -> Experiment {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.toml");
        let text = format!(
            "[experiment]\nname = \"e\"\n[defaults]\nepochs = 2\nhidden_fmaps = 8\n[grid]\nseed = [1, 2, 3]\n{extra}"
        );
        std::fs::write(&path, text).unwrap();
        Experiment::load(&path, &[]).unwrap()
    }

    #[test]
    fn without_calibration_or_history_there_is_work_but_no_time() {
        let e = experiment("");
        let dir = tempfile::tempdir().unwrap();
        let opts = EstimateOptions {
            registry: dir.path().join("none.sqlite"),
            calibrate: false,
            force: false,
            announce: false,
        };
        let est = estimate(&e, &opts).unwrap();
        assert_eq!(est.pending().count(), 3);
        assert_eq!(est.image_epochs(), 3 * 2 * 60_000);
        assert!(est.total_seconds.is_none() && est.speeds.skipped);
        assert!(!dir.path().join("none.sqlite").exists(), "nothing is created");
    }

    #[test]
    fn finished_runs_have_nothing_left_unless_forced() {
        let st = |status, trained| {
            Some(RunState {
                status,
                trained,
                config: RunConfig::default(),
                trial: false,
            })
        };
        assert_eq!(epochs_done(None, 25, false), 0);
        assert_eq!(epochs_done(st(RunStatus::Completed, 25).as_ref(), 25, false), 25);
        assert_eq!(epochs_done(st(RunStatus::Completed, 25).as_ref(), 25, true), 0);
        assert_eq!(epochs_done(st(RunStatus::Interrupted, 7).as_ref(), 25, false), 7);
        assert_eq!(epochs_done(st(RunStatus::Queued, 7).as_ref(), 25, false), 0);
        assert_eq!(epochs_done(st(RunStatus::Pruned, 3).as_ref(), 25, false), 25);
        assert_eq!(epochs_done(st(RunStatus::Running, 4).as_ref(), 25, true), 4);
    }
}
