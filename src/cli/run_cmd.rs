//! `pixelx run`: an experiment file, expanded, checked, and swept.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use super::{Cli, Interrupted};
use crate::census::Census;
use crate::config::{BackendKind, Experiment, RunConfig};
use crate::data::DatasetKind;
use crate::estimate::{EstimateOptions, SweepEstimate};
use crate::format::{about, count_grouped};
use crate::schedule::{run_experiment, SweepOptions};
use crate::slots;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Experiment file (TOML).
    pub file: PathBuf,
    /// Print the plan (runs, the parameters that vary, sizes and estimated time) without training.
    #[arg(long)]
    pub dry_run: bool,
    /// Estimate from the registry's history only; do not time architectures it lacks.
    #[arg(long)]
    pub no_calibrate: bool,
    /// Train again runs that are already complete.
    #[arg(long)]
    pub force: bool,
    /// Override a value: `--set epochs=3` (a run parameter) or `--set scheduler.runs_per_device=2`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

/// The command that continues this sweep: the same file, runs folder and overrides (without
/// them it would be another experiment, or the same one with other settings), quoted for a shell.
fn continue_command(cli: &Cli, args: &RunArgs) -> String {
    let mut words = vec!["pixelx".to_owned()];
    if cli.runs_dir != std::path::Path::new("runs") {
        words.push("--runs-dir".into());
        words.push(cli.runs_dir.display().to_string());
    }
    words.push("run".into());
    words.push(args.file.display().to_string());
    for o in &args.overrides {
        words.push("--set".into());
        words.push(o.clone());
    }
    words
        .iter()
        .map(|w| shlex::try_quote(w).map_or_else(|_| w.clone(), |q| q.into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The configurations a sweep trains (for adaptive search, the base one).
fn configs(experiment: &Experiment) -> Vec<&RunConfig> {
    if experiment.search.method.is_adaptive() {
        vec![&experiment.base]
    } else {
        experiment.runs.iter().map(|r| &r.config).collect()
    }
}

/// Checks what can be checked before anything is registered: the devices or the cluster, the
/// datasets, and that every run fits in memory. Returns the runs in flight at once. A dry run
/// only warns when the Slurm cluster cannot be reached (it may be planned from elsewhere).
fn preflight(cli: &Cli, experiment: &Experiment, args: &RunArgs) -> Result<usize> {
    let dry_run = args.dry_run;
    let slots = if experiment.scheduler.backend == BackendKind::Local {
        let slots = slots::plan_slots(
            &experiment.scheduler,
            crate::device::cuda_device_count(),
            crate::host::num_cores(),
            &crate::train::memory::workload(experiment, finished_runs(cli, experiment, args.force)),
        )?;
        let warning = slots::cpu_slots_warning(
            &experiment.scheduler,
            crate::device::cuda_device_count(),
            crate::host::num_cores(),
        );
        if let Some(w) = warning {
            eprintln!("{w}");
        }
        if slots.iter().any(|s| s.device == "cpu") {
            for config in configs(experiment) {
                crate::train::memory::check_fits(config, tch::Device::Cpu)?;
            }
        }
        slots.len()
    } else {
        match crate::schedule::slurm::preflight(&experiment.scheduler.slurm) {
            Err(e) if dry_run => eprintln!("warning: the Slurm cluster was not checked: {e:#}"),
            other => other?,
        }
        experiment.scheduler.slurm.max_jobs
    };
    Ok(slots::capacity(experiment, slots))
}

/// Runs of the experiment a re-run will not train again (none under `--force`, or before its
/// registry exists), read without creating the registry. A registry that cannot be read counts
/// none here: a dry run only warns about it, and a real run refuses it when it opens it.
fn finished_runs(cli: &Cli, experiment: &Experiment, force: bool) -> usize {
    let path = cli.registry_path();
    if force || !path.exists() {
        return 0;
    }
    crate::registry::Registry::open_read_only(&path)
        .and_then(|r| r.finished_count(&experiment.info.name))
        .unwrap_or(0)
}

/// What the sweep will cost on the slots it would use (see [`crate::estimate`]).
fn estimate(cli: &Cli, args: &RunArgs, experiment: &Experiment) -> Result<SweepEstimate> {
    crate::estimate::estimate(
        experiment,
        &EstimateOptions {
            registry: cli.registry_path(),
            calibrate: !args.no_calibrate,
            force: args.force,
            announce: !cli.quiet,
        },
    )
}

pub fn run(cli: &Cli, args: &RunArgs) -> Result<()> {
    let experiment = Experiment::load(&args.file, &args.overrides)?;
    let in_flight = preflight(cli, &experiment, args)?;
    for same in &experiment.equivalent {
        eprintln!("{}", same.note());
    }
    // A space whose axes combine into invalid configurations: those trials fail untrained.
    let census = experiment
        .search
        .method
        .is_adaptive()
        .then(|| crate::census::census(&experiment, true))
        .flatten();
    if let Some(w) = census.as_ref().and_then(|c| c.warning()) {
        eprintln!("{w}");
    }
    if args.dry_run {
        let estimate = estimate(cli, args, &experiment)?;
        print_plan(&experiment, &estimate, in_flight, census.as_ref())?;
        return Ok(());
    }
    let datasets: BTreeSet<DatasetKind> = configs(&experiment).iter().map(|c| c.dataset).collect();
    for d in datasets {
        crate::data::check_available(d, &cli.data_dir)?;
    }
    // Before it starts, what it will take (quiet runs skip the estimate and its calibration).
    let estimate = if cli.quiet {
        None
    } else {
        let e = estimate(cli, args, &experiment)?;
        println!("{}", e.total_line());
        if let Some(w) = e.cpu_warning() {
            println!("{w}");
        }
        Some(e)
    };
    let opts = SweepOptions {
        runs_dir: cli.runs_dir.clone(),
        data_dir: cli.data_dir.clone(),
        registry: cli.registry_path(),
        force: args.force,
        threads: (cli.threads > 0).then_some(cli.threads as usize),
    };
    let mut observer = super::sweep_view::observer(cli.quiet, estimate.as_ref());
    let s = run_experiment(&experiment, &opts, observer.as_mut())?;
    let pruned = if s.pruned > 0 || experiment.pruner.is_active() {
        format!(", {} pruned", s.pruned)
    } else {
        String::new()
    };
    let invalid = if s.invalid > 0 {
        format!(", {} invalid (failed trials, not trained)", s.invalid)
    } else {
        String::new()
    };
    println!(
        "experiment {}: {} completed, {} already done{pruned}, {} failed, {} diverged, {} interrupted{invalid}",
        experiment.info.name, s.completed, s.skipped, s.failed, s.diverged, s.interrupted
    );
    if s.stopped {
        return Err(Interrupted(format!(
            "interrupted; `{}` continues the sweep",
            continue_command(cli, args)
        ))
        .into());
    }
    if s.failed > 0 {
        bail!(
            "{} run(s) failed; `pixelx report --status failed` lists them",
            s.failed
        );
    }
    Ok(())
}

/// `1 done, 2 to train (the space holds 3 valid configurations of 4)`: what a study's dry run
/// will really train, from the estimate (which counts the trials recorded and caps the rest at
/// the space's untried valid configurations).
fn trials_to_train(estimate: &SweepEstimate, census: Option<&Census>) -> String {
    let to_train = estimate.pending().count();
    let done = estimate.runs.len() - to_train;
    let done = if done > 0 {
        format!("{done} done, ")
    } else {
        String::new()
    };
    let holds = match census {
        Some(Census {
            valid_ids: Some(valid),
            invalid,
            examined,
            ..
        }) => {
            let n = valid.len();
            let s = if n == 1 { "" } else { "s" };
            if *invalid > 0 {
                format!(" (the space holds {n} valid configuration{s} of {examined})")
            } else {
                format!(" (the space holds {n} configuration{s})")
            }
        }
        _ => String::new(),
    };
    format!("{done}{to_train} to train{holds}")
}

fn print_plan(
    experiment: &Experiment,
    estimate: &SweepEstimate,
    in_flight: usize,
    census: Option<&Census>,
) -> Result<()> {
    if experiment.search.method.is_adaptive() {
        print_study_plan(experiment, estimate, in_flight, census);
    } else {
        print_grid_plan(experiment, estimate)?;
    }
    for note in estimate.notes() {
        println!("{note}");
    }
    println!("{}", estimate.total_line());
    if let Some(w) = estimate.cpu_warning() {
        println!("{w}");
    }
    Ok(())
}

/// A study's dry run: its search, its space, and what each trial costs.
fn print_study_plan(e: &Experiment, estimate: &SweepEstimate, in_flight: usize, census: Option<&Census>) {
    println!(
        "experiment {}: {} search, {} trial(s): {}, {} in parallel{}",
        e.info.name,
        e.search.method.as_str(),
        e.search.trials.unwrap_or(0),
        trials_to_train(estimate, census),
        match e.search.parallel {
            Some(p) if p > in_flight =>
                format!("{in_flight} (of `parallel` = {p}: the scheduler has {in_flight} slot(s))"),
            _ => in_flight.to_string(),
        },
        if e.pruner.is_active() {
            format!(", pruner {:?} on {}", e.pruner.kind, e.pruner.metric).to_lowercase()
        } else {
            String::new()
        }
    );
    for (key, dist) in &e.search.space {
        println!("  {key}: {dist}");
    }
    if let Some(trial) = estimate.next_trial() {
        let w = &trial.work;
        println!(
            "  each trial (base configuration): {} parameters, {} images/epoch, {} epochs, {}",
            count_grouped(w.params),
            count_grouped(w.images_per_epoch),
            w.epochs,
            trial
                .seconds
                .map_or("time unknown".into(), |s| format!("about {}", about(s)))
        );
    }
}

/// A grid's dry run: a row per run with what it costs and the parameters that vary.
fn print_grid_plan(e: &Experiment, estimate: &SweepEstimate) -> Result<()> {
    let same = match e.equivalent.len() {
        0 => String::new(),
        n => format!(" (and {n} grid point(s) the same model as one of these, not trained again)"),
    };
    println!("experiment {}: {} run(s){same}", e.info.name, e.runs.len());
    let varying: Vec<&str> = e.varying_keys().into_iter().filter(|k| *k != "epochs").collect();
    let mut rows = vec![["run", "params", "images/epoch", "epochs", "est. time"]
        .iter()
        .map(|s| s.to_string())
        .chain(varying.iter().map(|k| k.to_string()))
        .collect::<Vec<_>>()];
    for (r, est) in e.runs.iter().zip(&estimate.runs) {
        let v = serde_json::to_value(&r.config)?;
        let w = &est.work;
        let time = match est.seconds {
            _ if w.epochs_left == 0 => "done".to_owned(),
            Some(s) => crate::format::seconds(s),
            None => "-".into(),
        };
        let epochs = if w.epochs_left < w.epochs && w.epochs_left > 0 {
            format!("{} ({} left)", w.epochs, w.epochs_left)
        } else {
            w.epochs.to_string()
        };
        let mut row = vec![
            r.id.clone(),
            count_grouped(w.params),
            count_grouped(w.images_per_epoch),
            epochs,
            time,
        ];
        row.extend(varying.iter().map(|k| match &v[*k] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }));
        rows.push(row);
    }
    print_aligned(&rows);
    Ok(())
}

pub fn print_aligned(rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(f, w)| format!("{f:<w$}")).collect();
        println!("{}", line.join("  ").trim_end());
    }
}
