//! `pixelx sync mlflow`: the registry's experiments and runs, pushed to an MLflow tracking server
//! through its REST API.
//!
//! Each pixelx experiment becomes an MLflow experiment of the same name, each run an MLflow run
//! named by its id, with its parameters, every metric value (per-step metrics at their step,
//! per-epoch ones at their epoch), its status, start and end times, tags naming its pixelx run
//! id, search method, trial and prune reason, and its artefacts: the best checkpoint in the
//! reference layout (what `pixelx export` writes), its sample grids and its resolved config.
//!
//! What was sent is remembered in the registry ([`state`]), row by row as the server confirms
//! it, so a second sync sends only what is new, a run pruned or resumed since is updated, and a
//! sync stopped anywhere continues where it stopped. Replays are harmless too: a run is found by
//! its `pixelx.run_id` tag before one is created, and a metric value carries a fixed timestamp
//! (its run's start), which MLflow stores once however often it is sent.

pub mod client;
pub mod mapping;
mod plan;
mod push;
pub mod state;

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::registry::{Registry, RunFilter, RunStatus, RunSummary};
use client::Client;
pub use plan::SyncSummary;
use plan::{count_dry, plan_run};
use push::{ensure_experiment, push_run};
use state::SentState;

pub struct SyncOptions<'a> {
    /// The tracking server, `http(s)://HOST:PORT[/prefix]`.
    pub uri: &'a str,
    /// Only this pixelx experiment.
    pub experiment: Option<&'a str>,
    /// Say what would be sent, contacting nothing and recording nothing.
    pub dry_run: bool,
    pub runs_dir: &'a Path,
    /// A progress bar over the runs (on a terminal).
    pub show_progress: bool,
}

/// Pushes the registry's runs (of one experiment, if given) to the server at `opts.uri`.
pub fn sync_mlflow(registry: &Registry, opts: &SyncOptions) -> Result<SyncSummary> {
    // The client is built even for a dry run: it checks the URI and the environment.
    let client = Client::new(opts.uri)?;
    let mut state = SentState::load(registry, client.server(), opts.dry_run)?;
    let filter = RunFilter {
        experiment: opts.experiment.map(str::to_owned),
        ..RunFilter::default()
    };
    let runs = registry.summaries(&filter)?;
    if runs.is_empty() {
        match opts.experiment {
            Some(e) => bail!("no runs of experiment `{e}` in {}", registry.path.display()),
            None => bail!("no runs in {}", registry.path.display()),
        }
    }
    // A queued run has nothing to show yet; it is sent once it starts (or fails to).
    let runs: Vec<RunSummary> = runs
        .into_iter()
        .filter(|r| r.status != RunStatus::Queued)
        .collect();
    // Experiments first: finding that the server's store was replaced changes what is planned.
    let mut experiments: HashMap<String, String> = HashMap::new();
    if !opts.dry_run {
        for run in &runs {
            if !experiments.contains_key(&run.experiment) {
                let id = ensure_experiment(&client, &mut state, registry, &run.experiment)?;
                experiments.insert(run.experiment.clone(), id);
            }
        }
    }
    let samples = registry.sample_epochs(None)?;
    let mut work = Vec::new();
    for run in runs {
        let epochs = samples.get(&run.id).cloned().unwrap_or_default();
        work.push(plan_run(registry, &state, opts.runs_dir, run, &epochs)?);
    }
    let mut summary = SyncSummary {
        server: client.server().to_owned(),
        runs: work.len(),
        ..SyncSummary::default()
    };
    if opts.dry_run {
        for w in &work {
            count_dry(&mut summary, &state, w);
        }
        return Ok(summary);
    }
    let bar = progress_bar(work.len(), opts.show_progress);
    for w in &work {
        bar.set_message(w.run.id.clone());
        if !w.is_empty(&state) {
            push_run(
                &client,
                &mut state,
                &experiments[&w.run.experiment],
                w,
                &mut summary,
            )
            .with_context(|| format!("syncing run {} to MLflow", w.run.id))?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(summary)
}

fn progress_bar(len: usize, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("syncing {bar:30} {pos}/{len} runs {msg}") {
        bar.set_style(style);
    }
    bar
}
