//! `pixelx run`, `report`, `ls` and `show`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use super::Cli;
use crate::config::Experiment;
use crate::registry::{Registry, RunFilter};
use crate::report::{self, Format};
use crate::schedule::{run_experiment, SweepOptions};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Experiment file (TOML).
    pub file: PathBuf,
    /// Print the plan (runs and the parameters that vary) without training.
    #[arg(long)]
    pub dry_run: bool,
    /// Train again runs that are already complete.
    #[arg(long)]
    pub force: bool,
    /// Override a value: `--set epochs=3` (a run parameter) or `--set scheduler.runs_per_device=2`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

pub fn run(cli: &Cli, args: &RunArgs) -> Result<()> {
    let experiment = Experiment::load(&args.file, &args.overrides)?;
    let varying = experiment.varying_keys();
    if args.dry_run {
        println!(
            "experiment {}: {} run(s)",
            experiment.info.name,
            experiment.runs.len()
        );
        let mut rows = vec![std::iter::once("run".to_owned())
            .chain(varying.iter().map(|k| k.to_string()))
            .collect()];
        for r in &experiment.runs {
            let v = serde_json::to_value(&r.config)?;
            let mut row = vec![r.id.clone()];
            row.extend(varying.iter().map(|k| match &v[*k] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            }));
            rows.push(row);
        }
        print_aligned(&rows);
        return Ok(());
    }
    for spec in &experiment.runs {
        crate::data::check_available(&spec.config.dataset, &cli.data_dir)?;
    }
    let opts = SweepOptions {
        runs_dir: cli.runs_dir.clone(),
        data_dir: cli.data_dir.clone(),
        registry: cli.registry_path(),
        force: args.force,
        quiet: cli.quiet,
    };
    let s = run_experiment(&experiment, &opts)?;
    println!(
        "experiment {}: {} completed, {} already done, {} failed, {} diverged, {} interrupted",
        experiment.info.name, s.completed, s.skipped, s.failed, s.diverged, s.interrupted
    );
    if s.failed > 0 {
        bail!(
            "{} run(s) failed; `pixelx report --status failed` lists them",
            s.failed
        );
    }
    Ok(())
}

fn print_aligned(rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(f, w)| format!("{f:<w$}")).collect();
        println!("{}", line.join("  ").trim_end());
    }
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Show the best run(s) of each experiment by test bpd8, with config, checkpoint and samples.
    #[arg(long, num_args = 0..=1, default_missing_value = "1", value_name = "N")]
    pub best: Option<usize>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Also write a self-contained HTML report here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    #[arg(long)]
    pub experiment: Option<String>,
    /// Only runs whose parameter KEY equals VALUE (repeatable).
    #[arg(long = "where", value_name = "KEY=VALUE")]
    pub conditions: Vec<String>,
    /// Only runs with this status (queued, running, completed, failed, diverged, interrupted).
    #[arg(long)]
    pub status: Option<String>,
    /// bpd8 (default), bpd, images_per_sec, wall, status, id or a run parameter.
    #[arg(long, default_value = "bpd8")]
    pub sort: String,
    #[arg(long)]
    pub limit: Option<usize>,
}

pub fn report(cli: &Cli, args: &ReportArgs) -> Result<()> {
    let registry = Registry::open(&cli.registry_path())?;
    let mut conditions = Vec::new();
    for c in &args.conditions {
        let (k, v) = c
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--where {c}: expected KEY=VALUE"))?;
        if !crate::config::RUN_KEYS.contains(&k) {
            bail!("--where: unknown parameter `{k}`");
        }
        conditions.push((k.to_owned(), v.to_owned()));
    }
    if let Some(s) = &args.status {
        crate::registry::RunStatus::parse(s)?;
    }
    let filter = RunFilter {
        experiment: args.experiment.clone(),
        conditions,
        status: args.status.clone(),
        run_id: None,
    };
    let mut runs = registry.summaries(&filter)?;
    report::sort_runs(&mut runs, &args.sort)?;
    if let Some(n) = args.limit {
        runs.truncate(n);
    }
    if runs.is_empty() {
        println!(
            "no runs match in {} (start some with `pixelx run FILE`)",
            registry.path.display()
        );
        return Ok(());
    }
    let params = report::varying_params(&runs);
    if let Some(path) = &args.html {
        report::write_html(&registry, &runs, &cli.runs_dir, path)?;
        eprintln!("wrote {}", path.display());
    }
    match args.best {
        Some(n) => print!(
            "{}",
            report::render_best(&report::best_runs(&runs, n.max(1)), args.format)?
        ),
        None => println!("{}", report::render(&runs, &params, args.format)?),
    }
    Ok(())
}

pub fn ls(cli: &Cli) -> Result<()> {
    let registry = Registry::open(&cli.registry_path())?;
    let runs = registry.summaries(&RunFilter::default())?;
    if runs.is_empty() {
        println!("no runs in {}", registry.path.display());
        return Ok(());
    }
    println!("{}", report::render(&runs, &[], Format::Table)?);
    Ok(())
}

pub fn show(cli: &Cli, run_id: &str) -> Result<()> {
    let registry = Registry::open(&cli.registry_path())?;
    let id = super::train_cmd::resolve_run_id(&registry, run_id)?;
    let row = registry.run(&id)?.expect("resolved ids exist");
    println!(
        "run        {id}\nexperiment {}\nstatus     {}",
        row.experiment,
        row.status.as_str()
    );
    println!(
        "device     {}\nattempts   {}\nfolder     {}",
        row.device.as_deref().unwrap_or("-"),
        row.attempts,
        row.run_dir.display()
    );
    if let Some(e) = &row.error {
        println!("error      {e}");
    }
    println!(
        "\nconfig\n{}",
        toml::to_string(&row.config)?
            .trim_end()
            .lines()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!("\nhistory");
    for (status, at, detail) in registry.events(&id)? {
        println!("  {at}  {status:<11} {}", detail.unwrap_or_default());
    }
    let history = registry.metric_history(&id)?;
    println!("\nepochs");
    println!(
        "  {:<6} {:>11} {:>9} {:>9} {:>9} {:>8}",
        "epoch", "train loss", "nll", "bpd", "bpd8", "img/s"
    );
    let epochs: std::collections::BTreeSet<i64> = history.iter().filter_map(|(_, _, e, _)| *e).collect();
    for e in epochs {
        let get = |name: &str| {
            history
                .iter()
                .find(|(n, _, ep, _)| n == name && *ep == Some(e))
                .map_or(f64::NAN, |m| m.3)
        };
        println!(
            "  {e:<6} {:>11.4} {:>9.4} {:>9.4} {:>9.4} {:>8.1}",
            get("epoch_train_loss"),
            get("test_nll"),
            get("test_bpd"),
            get("test_bpd8"),
            get("images_per_sec")
        );
    }
    let steps = history.iter().filter(|(n, ..)| n == "train_loss").count();
    println!("  ({steps} training steps recorded)");
    let summary = registry.summaries(&RunFilter::run(&id))?.into_iter().next();
    if let Some(s) = summary {
        println!(
            "\nartefacts\n  checkpoint {}\n  samples    {}",
            s.checkpoint.as_deref().unwrap_or("-"),
            s.samples.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}
