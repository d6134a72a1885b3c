//! What a sync has to send: for each run, what the server lacks by the sent state (planned
//! before anything is sent, so that a dry run counts exactly what a real one would send).

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::mapping;
use super::state::SentState;
use crate::registry::{MetricRow, Registry, RunStatus, RunSummary};
use crate::run_dir::RunDir;

/// What a sync sent (or, dry, would send).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncSummary {
    /// The server, without credentials.
    pub server: String,
    pub runs: usize,
    pub runs_created: usize,
    pub params: usize,
    pub metric_values: usize,
    pub tag_updates: usize,
    pub artifacts: usize,
    pub status_updates: usize,
    /// Why artefacts were not uploaded, when the server does not serve them.
    pub artifacts_skipped: Option<String>,
}

impl SyncSummary {
    pub fn nothing_new(&self) -> bool {
        self.runs_created
            + self.params
            + self.metric_values
            + self.tag_updates
            + self.artifacts
            + self.status_updates
            == 0
    }
}

/// One artefact of a run and where its bytes come from.
pub(super) struct Artifact {
    /// Its path under the run's MLflow artifact root.
    pub(super) dest: String,
    pub(super) source: PathBuf,
    /// The best checkpoint is uploaded in the reference layout, as `pixelx export` writes it.
    pub(super) export: bool,
    /// SHA-256 of the source file: a changed file (a new best epoch) is uploaded again.
    pub(super) sha: String,
}

/// What one run still has to send.
pub(super) struct RunWork {
    pub(super) run: RunSummary,
    pub(super) status: RunStatus,
    pub(super) start_ms: i64,
    pub(super) end_ms: Option<i64>,
    pub(super) tags: Vec<(String, String)>,
    pub(super) tags_key: String,
    pub(super) send_params: bool,
    pub(super) metrics: Vec<MetricRow>,
    pub(super) artifacts: Vec<Artifact>,
    pub(super) status_key: String,
    pub(super) send_status: bool,
}

impl RunWork {
    pub(super) fn is_empty(&self, state: &SentState) -> bool {
        state.get(&self.run.id, "run").is_some()
            && !self.send_params
            && state.get(&self.run.id, "tags") == Some(self.tags_key.as_str())
            && self.metrics.is_empty()
            && self.artifacts.is_empty()
            && !self.send_status
    }
}

/// What `run` has that the server lacks, by the sent state.
pub(super) fn plan_run(
    registry: &Registry,
    state: &SentState,
    runs_dir: &Path,
    run: RunSummary,
    sample_epochs: &[u32],
) -> Result<RunWork> {
    let id = run.id.clone();
    let status = run.status;
    let start_ms = start_ms(registry, &run)?;
    let end_ms = run
        .finished_at
        .as_deref()
        .filter(|_| status.is_final() || status == RunStatus::Interrupted)
        .and_then(mapping::millis);
    let prune_reason = prune_reason(registry, &run, status)?;
    let tags = mapping::tags(&run, prune_reason.as_deref());
    // The tags themselves are the record (nothing secret): a later sync removes those that no
    // longer apply, such as the prune reason of a run resumed since.
    let tags_key = serde_json::to_string(&tags)?;
    let metrics = unsent_metrics(registry, state, &id)?;
    let artifacts = unsent_artifacts(state, &RunDir::new(runs_dir, &id), &id, sample_epochs)?;
    let status_key = format!(
        "{}|{}",
        mapping::mlflow_status(status),
        end_ms.map(|t| t.to_string()).unwrap_or_default()
    );
    Ok(RunWork {
        send_params: state.get(&id, "params").is_none(),
        send_status: state.get(&id, "status") != Some(status_key.as_str()),
        run,
        status,
        start_ms,
        end_ms,
        tags,
        tags_key,
        metrics,
        artifacts,
        status_key,
    })
}

/// When a run started. A run that failed before it started training has no start: it is shown
/// from when it was queued (its first event), so that MLflow still orders it among its
/// experiment's runs.
fn start_ms(registry: &Registry, run: &RunSummary) -> Result<i64> {
    Ok(match run.started_at.as_deref().and_then(mapping::millis) {
        Some(ms) => ms,
        None => registry
            .events(&run.id)?
            .first()
            .and_then(|(_, at, _)| mapping::millis(at))
            .unwrap_or(0),
    })
}

/// Why a pruned run was stopped: its error, or else the pruning decision it recorded.
fn prune_reason(registry: &Registry, run: &RunSummary, status: RunStatus) -> Result<Option<String>> {
    Ok(match (status, &run.error) {
        (RunStatus::Pruned, Some(e)) => Some(e.clone()),
        (RunStatus::Pruned, None) => registry
            .events(&run.id)?
            .into_iter()
            .rev()
            .find(|(kind, _, detail)| {
                kind == "decision" && detail.as_deref().is_some_and(|d| d.starts_with("prune"))
            })
            .and_then(|(_, _, detail)| detail),
        _ => None,
    })
}

/// The run's metric values past the last step sent of each metric.
fn unsent_metrics(registry: &Registry, state: &SentState, id: &str) -> Result<Vec<MetricRow>> {
    Ok(registry
        .metric_history(id)?
        .into_iter()
        .filter(|m| {
            state
                .get(id, &format!("metric:{}", m.name))
                .and_then(|s| s.parse::<i64>().ok())
                .is_none_or(|sent| m.step > sent)
        })
        .collect())
}

/// The run's artefacts that exist and were not sent with their present bytes.
fn unsent_artifacts(
    state: &SentState,
    dir: &RunDir,
    id: &str,
    sample_epochs: &[u32],
) -> Result<Vec<Artifact>> {
    let mut artifacts = Vec::new();
    let mut add = |dest: String, source: PathBuf, export: bool| -> Result<()> {
        if !source.is_file() {
            return Ok(());
        }
        let sha = crate::weights::file_sha256(&source)?;
        if state.get(id, &format!("artifact:{dest}")) != Some(sha.as_str()) {
            artifacts.push(Artifact {
                dest,
                source,
                export,
                sha,
            });
        }
        Ok(())
    };
    add(mapping::CONFIG_ARTIFACT.to_owned(), dir.config_path(), false)?;
    for &epoch in sample_epochs {
        add(mapping::sample_artifact(epoch), dir.epoch_samples(epoch), false)?;
    }
    add(mapping::MODEL_ARTIFACT.to_owned(), dir.best_checkpoint(), true)?;
    Ok(artifacts)
}

/// Counts what `w` would send, for a dry run.
pub(super) fn count_dry(summary: &mut SyncSummary, state: &SentState, w: &RunWork) {
    if state.get(&w.run.id, "run").is_none() {
        summary.runs_created += 1;
    }
    if w.send_params {
        summary.params += w.run.params.len();
    }
    if state.get(&w.run.id, "tags") != Some(w.tags_key.as_str()) {
        summary.tag_updates += 1;
    }
    summary.metric_values += w.metrics.len();
    summary.artifacts += w.artifacts.len();
    summary.status_updates += usize::from(w.send_status);
}
