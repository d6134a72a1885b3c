//! `pixelx run`: an experiment file, expanded, checked, and swept.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use super::{Cli, Interrupted};
use crate::config::{BackendKind, Experiment, RunConfig};
use crate::data::DatasetKind;
use crate::schedule::{run_experiment, SweepOptions};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Experiment file (TOML).
    pub file: PathBuf,
    /// Print the plan (runs, the parameters that vary, sizes and estimated time) without training.
    #[arg(long)]
    pub dry_run: bool,
    /// Train again runs that are already complete.
    #[arg(long)]
    pub force: bool,
    /// Override a value: `--set epochs=3` (a run parameter) or `--set scheduler.runs_per_device=2`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
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
fn preflight(experiment: &Experiment, dry_run: bool) -> Result<usize> {
    let slots = if experiment.scheduler.backend == BackendKind::Local {
        let slots = crate::schedule::plan_slots(
            &experiment.scheduler,
            crate::device::cuda_device_count(),
            crate::host::num_cores(),
        )?;
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
    Ok(match experiment.search.parallel {
        Some(p) if experiment.search.method.is_adaptive() => p.min(slots),
        _ => slots,
    })
}

pub fn run(cli: &Cli, args: &RunArgs) -> Result<()> {
    let experiment = Experiment::load(&args.file, &args.overrides)?;
    let in_flight = preflight(&experiment, args.dry_run)?;
    if args.dry_run {
        print_plan(&experiment, in_flight)?;
        return Ok(());
    }
    let datasets: BTreeSet<DatasetKind> = configs(&experiment).iter().map(|c| c.dataset).collect();
    for d in datasets {
        crate::data::check_available(d, &cli.data_dir)?;
    }
    let opts = SweepOptions {
        runs_dir: cli.runs_dir.clone(),
        data_dir: cli.data_dir.clone(),
        registry: cli.registry_path(),
        force: args.force,
        quiet: cli.quiet,
        threads: (cli.threads > 0).then_some(cli.threads as usize),
    };
    let s = run_experiment(&experiment, &opts)?;
    let pruned = if s.pruned > 0 || experiment.pruner.is_active() {
        format!(", {} pruned", s.pruned)
    } else {
        String::new()
    };
    println!(
        "experiment {}: {} completed, {} already done{pruned}, {} failed, {} diverged, {} interrupted",
        experiment.info.name, s.completed, s.skipped, s.failed, s.diverged, s.interrupted
    );
    if s.stopped {
        return Err(Interrupted(format!(
            "interrupted; `pixelx run {}` continues the sweep",
            args.file.display()
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

fn print_plan(experiment: &Experiment, in_flight: usize) -> Result<()> {
    let e = experiment;
    if e.search.method.is_adaptive() {
        println!(
            "experiment {}: {} search, {} trial(s), {} in parallel{}",
            e.info.name,
            e.search.method.as_str(),
            e.search.trials.unwrap_or(0),
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
        return Ok(());
    }
    println!("experiment {}: {} run(s)", e.info.name, e.runs.len());
    let varying = e.varying_keys();
    let mut rows = vec![std::iter::once("run".to_owned())
        .chain(varying.iter().map(|k| k.to_string()))
        .collect::<Vec<_>>()];
    for r in &e.runs {
        let v = serde_json::to_value(&r.config)?;
        let mut row = vec![r.id.clone()];
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
