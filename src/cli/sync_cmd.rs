//! `pixelx sync mlflow`: push experiments, runs and artefacts to an MLflow tracking server.

use std::io::IsTerminal;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::Cli;
use crate::registry::Registry;
use crate::sync::{SyncOptions, SyncSummary};

#[derive(Subcommand, Debug)]
pub enum SyncTarget {
    /// Push experiments, runs (parameters, metrics, status, times, tags) and artefacts (best
    /// checkpoint in the reference layout, sample grids, config) to an MLflow tracking server.
    /// Sends only what is new since the last sync; an interrupted sync continues. Credentials:
    /// MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD.
    Mlflow(MlflowArgs),
}

#[derive(Args, Debug)]
pub struct MlflowArgs {
    /// The tracking server, http(s)://HOST:PORT.
    #[arg(long, env = "MLFLOW_TRACKING_URI", hide_env_values = true)]
    pub uri: String,
    /// Only this experiment's runs.
    #[arg(long)]
    pub experiment: Option<String>,
    /// Say what would be sent, without contacting the server or recording anything.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn sync(cli: &Cli, target: &SyncTarget) -> Result<()> {
    let SyncTarget::Mlflow(args) = target;
    let path = cli.registry_path();
    // Checks that a registry is there (and says so) before anything is created.
    let registry = Registry::open_read_only(&path)?;
    let registry = if args.dry_run {
        registry
    } else {
        drop(registry);
        Registry::open(&path)?
    };
    let opts = SyncOptions {
        uri: &args.uri,
        experiment: args.experiment.as_deref(),
        dry_run: args.dry_run,
        runs_dir: &cli.runs_dir,
        show_progress: !cli.quiet && std::io::stderr().is_terminal(),
    };
    let summary = crate::sync::sync_mlflow(&registry, &opts)?;
    println!("{}", describe(&summary, args.dry_run));
    if let Some(why) = &summary.artifacts_skipped {
        eprintln!("warning: artefacts not uploaded: {why}");
    }
    Ok(())
}

/// One line: what was (or would be) sent where.
fn describe(s: &SyncSummary, dry_run: bool) -> String {
    let verb = if dry_run { "would send" } else { "sent" };
    if s.nothing_new() {
        return format!(
            "{} runs already in sync with MLflow at {}: nothing new to send",
            s.runs, s.server
        );
    }
    format!(
        "{} runs, MLflow at {}: {verb} {} new runs, {} parameters, {} metric values, {} tag updates, {} artefacts, {} status updates",
        s.runs, s.server, s.runs_created, s.params, s.metric_values, s.tag_updates, s.artifacts, s.status_updates
    )
}
