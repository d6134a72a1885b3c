//! `pixelx report`, `ls` and `show`: read-only views of the registry.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use super::args::at_least_one;
use super::Cli;
use crate::config::{suggest, RUN_KEYS};
use crate::precision::Precision;
use crate::registry::{MetricRow, Registry, RunFilter, RunRow, RunStatus, RunSummary};
use crate::report::html::REPORT_ROWS;
use crate::report::{self, Format};
use crate::run_dir::RunDir;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Show the best run(s) of each experiment by test bpd8, with config, checkpoint and samples.
    #[arg(long, num_args = 0..=1, default_missing_value = "1", value_name = "N", value_parser = at_least_one)]
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
    /// Only runs with this status.
    #[arg(long, value_enum)]
    pub status: Option<RunStatus>,
    /// bpd8 (default), bpd, images_per_sec, wall, status, id, trial or a run parameter.
    #[arg(long, default_value = "bpd8")]
    pub sort: String,
    #[arg(long, value_parser = at_least_one)]
    pub limit: Option<usize>,
}

/// Runs whose journals hold results the registry has not ingested yet, of `(id, journal offset)`.
fn unread(cli: &Cli, runs: impl IntoIterator<Item = (String, u64)>) -> Vec<String> {
    runs.into_iter()
        .filter(|(id, offset)| crate::journal::has_unread(&RunDir::new(&cli.runs_dir, id).root, *offset))
        .map(|(id, _)| id)
        .collect()
}

fn note_unread(cli: &Cli, runs: impl IntoIterator<Item = (String, u64)>) {
    let ids = unread(cli, runs);
    if !ids.is_empty() {
        eprintln!(
            "note: {} run(s) have newer results in their run folder than the registry shows ({}); \
             `pixelx run FILE` of their experiment (or `pixelx resume RUN`) ingests them",
            ids.len(),
            ids.join(", ")
        );
    }
}

fn offsets(runs: &[RunSummary]) -> impl Iterator<Item = (String, u64)> + '_ {
    runs.iter().map(|r| (r.id.clone(), r.journal_offset))
}

/// An `--experiment` the registry does not know is a typo to name, not an empty table.
fn check_experiment(registry: &Registry, name: &str) -> Result<()> {
    let known: Vec<String> = registry.experiments()?.into_iter().map(|e| e.name).collect();
    if known.iter().any(|k| k == name) {
        return Ok(());
    }
    let listed = if known.is_empty() {
        "it records none yet".to_owned()
    } else {
        format!("it knows {}", known.join(", "))
    };
    bail!(
        "no experiment `{name}` in {} ({listed}){}",
        registry.path.display(),
        suggest(name, &known.iter().map(String::as_str).collect::<Vec<_>>())
    )
}

/// Whether `report` selects whole experiments (no `--where`, `--status` or `--limit`): then the
/// HTML report is read at scale from the registry rather than drawn from the runs read here.
fn whole(filter: &RunFilter, args: &ReportArgs) -> bool {
    filter.conditions.is_empty() && filter.status.is_none() && args.limit.is_none()
}

/// Whether the terminal table lists only what the HTML report's tables list: beside an HTML
/// report of whole experiments, in the default table by best bpd8. Those tables hold the best
/// [`REPORT_ROWS`] of each experiment, so that many are read per experiment, along the rank
/// indexes, and a registry of 100,000 runs is not read whole for a few hundred lines.
fn listed_only(filter: &RunFilter, args: &ReportArgs, html: bool) -> bool {
    html && whole(filter, args) && args.best.is_none() && args.format == Format::Table && args.sort == "bpd8"
}

/// The runs `report` prints, sorted and limited as asked, with how many runs there are.
fn read_runs(
    registry: &Registry,
    filter: &RunFilter,
    args: &ReportArgs,
    html: bool,
) -> Result<(Vec<RunSummary>, usize)> {
    if listed_only(filter, args, html) {
        let (mut ids, mut total) = (Vec::new(), 0);
        for e in registry.experiments()? {
            if filter.experiment.as_ref().is_some_and(|name| *name != e.name) {
                continue;
            }
            let (best, runs) = registry.best_ids(&e.name, REPORT_ROWS)?;
            ids.extend(best);
            total += runs;
        }
        let mut runs = registry.summaries_of(&ids)?;
        report::sort_runs(&mut runs, &args.sort)?;
        return Ok((runs, total));
    }
    let mut runs = registry.summaries(filter)?;
    report::sort_runs(&mut runs, &args.sort)?;
    if let Some(n) = args.limit {
        runs.truncate(n);
    }
    let total = runs.len();
    Ok((runs, total))
}

/// Writes `report`'s HTML file to `path`, adding to `params` (the terminal's parameter columns)
/// those its views found swept among runs the terminal does not list.
fn write_html(
    cli: &Cli,
    registry: &Registry,
    (filter, args): (&RunFilter, &ReportArgs),
    runs: &[RunSummary],
    path: &std::path::Path,
    params: &mut Vec<String>,
) -> Result<()> {
    // Whole experiments are read at scale (only the runs shown); a filtered or limited
    // selection is drawn from the summaries `report` read.
    if whole(filter, args) {
        let swept = report::write_report(
            registry,
            args.experiment.as_deref(),
            &args.sort,
            &cli.runs_dir,
            path,
        )?;
        // The runs listed are the best of each experiment: a parameter may be swept among the
        // others only, and its column is shown all the same.
        if listed_only(filter, args, true) {
            *params = RUN_KEYS
                .iter()
                .filter(|k| params.iter().chain(&swept).any(|p| p == *k))
                .map(|k| k.to_string())
                .collect();
        }
    } else {
        report::write_html(registry, runs, &cli.runs_dir, path)?;
    }
    eprintln!(
        "wrote {}",
        args.html.as_ref().map_or(path, |p| p.as_path()).display()
    );
    Ok(())
}

pub fn report(cli: &Cli, args: &ReportArgs) -> Result<()> {
    let mut conditions = Vec::new();
    for c in &args.conditions {
        let (k, v) = c
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--where {c}: expected KEY=VALUE"))?;
        if !RUN_KEYS.contains(&k) {
            bail!("--where: unknown parameter `{k}`{}", suggest(k, &RUN_KEYS));
        }
        conditions.push((k.to_owned(), v.to_owned()));
    }
    let html = args
        .html
        .as_ref()
        .map(|p| crate::fsio::check_output(p, &cli.protected()))
        .transpose()?;
    let registry = Registry::open_read_only(&cli.registry_path())?;
    if let Some(name) = &args.experiment {
        check_experiment(&registry, name)?;
    }
    let filter = RunFilter {
        experiment: args.experiment.clone(),
        conditions,
        status: args.status,
        run_id: None,
    };
    let (runs, total) = read_runs(&registry, &filter, args, html.is_some())?;
    if runs.is_empty() {
        println!(
            "no runs match in {} (start some with `pixelx run FILE`)",
            registry.path.display()
        );
        return Ok(());
    }
    let mut params = report::varying_params(&runs);
    if let Some(path) = &html {
        write_html(cli, &registry, (&filter, args), &runs, path, &mut params)?;
    }
    match args.best {
        Some(n) => print!(
            "{}",
            report::render_best(&report::best_runs(&runs, n), args.format, &cli.runs_dir)?
        ),
        None => {
            // Beside an HTML report of whole experiments the terminal got the rows its tables
            // list (see `listed_only`); otherwise every run selected is printed.
            println!("{}", report::render(&runs, &params, args.format)?);
            if runs.len() < total {
                eprintln!(
                    "note: {} more runs are not listed here, as in the HTML report's tables (the best \
                     {REPORT_ROWS} of each experiment); `--format csv` lists all {total}",
                    total - runs.len()
                );
            }
        }
    }
    // Runs left out of a long listing are checked too: a run never ingested has no result, so
    // it is the one least likely to be among those read.
    if runs.len() < total {
        note_unread(cli, registry.journal_offsets(filter.experiment.as_deref())?);
    } else {
        note_unread(cli, offsets(&runs));
    }
    Ok(())
}

pub fn ls(cli: &Cli) -> Result<()> {
    let registry = Registry::open_read_only(&cli.registry_path())?;
    let runs = registry.summaries(&RunFilter::default())?;
    if runs.is_empty() {
        println!("no runs in {}", registry.path.display());
        return Ok(());
    }
    println!("{}", report::render(&runs, &[], Format::Table)?);
    note_unread(cli, offsets(&runs));
    Ok(())
}

pub fn show(cli: &Cli, given: &str) -> Result<()> {
    let id = super::resolve_run_id(cli, given)?;
    let registry = Registry::open_read_only(&cli.registry_path())?;
    let row = registry
        .run(&id)?
        .ok_or_else(|| anyhow::anyhow!("run {id} vanished"))?;
    let run = RunDir::new(&cli.runs_dir, &id);
    let summary = registry.summaries(&RunFilter::run(&id))?.into_iter().next();
    let status = match &summary {
        Some(s) => report::status_text(s),
        None => row.status.as_str().to_owned(),
    };
    println!(
        "run        {id}\nexperiment {}\nstatus     {status}",
        row.experiment
    );
    if let Some(t) = row.trial {
        let method = summary.as_ref().map_or("search", |s| s.method.as_str());
        println!("trial      {t} ({method})");
    }
    println!(
        "device     {}\nattempts   {}\nfolder     {}",
        row.device.as_deref().unwrap_or("-"),
        row.attempts,
        run.root.display()
    );
    println!("precision  {}", precision_text(&row));
    if row.status == RunStatus::Running {
        println!("worker     {}", row.holder());
    }
    if let Some(e) = &row.error {
        println!("note       {e}");
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
    print_epochs(&registry.metric_history(&id)?);
    if let Some(s) = summary {
        let show = |rel: Option<&str>| rel.map_or("-".into(), |r| run.root.join(r).display().to_string());
        println!(
            "\nartefacts\n  checkpoint {}\n  samples    {}",
            show(s.checkpoint.as_deref()),
            show(s.samples.as_deref())
        );
        note_unread(cli, [(s.id, s.journal_offset)]);
    }
    Ok(())
}

/// The precision a run trained in, and what its config asked when that differs: `bf16 (auto)`;
/// before any worker started it, what its config asks (`auto (chosen when it starts)`).
fn precision_text(row: &RunRow) -> String {
    let asked = row.config.precision;
    match row.precision {
        Some(used) if used == asked => used.as_str().to_owned(),
        Some(used) => format!("{} ({})", used.as_str(), asked.as_str()),
        None if asked == Precision::Auto => "auto (chosen for the device when it starts)".into(),
        None => asked.as_str().to_owned(),
    }
}

/// `show`'s table of a run's epochs, and how many training steps it recorded.
fn print_epochs(history: &[MetricRow]) {
    println!("\nepochs");
    println!(
        "  {:<6} {:>11} {:>9} {:>9} {:>9} {:>8}",
        "epoch", "train loss", "nll", "bpd", "bpd8", "img/s"
    );
    let epochs: std::collections::BTreeSet<i64> = history.iter().filter_map(|m| m.epoch).collect();
    for e in epochs {
        let get = |name: &str| {
            history
                .iter()
                .find(|m| m.name == name && m.epoch == Some(e))
                .map_or(f64::NAN, |m| m.value)
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
    let steps = history.iter().filter(|m| m.name == "train_loss").count();
    println!("  ({steps} training steps recorded)");
}
