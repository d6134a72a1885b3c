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
pub mod state;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

use crate::registry::{MetricRow, Registry, RunFilter, RunStatus, RunSummary};
use crate::run_dir::RunDir;
use client::{Client, MlflowError};
use state::{SentState, NO_RUN};

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
struct Artifact {
    /// Its path under the run's MLflow artifact root.
    dest: String,
    source: PathBuf,
    /// The best checkpoint is uploaded in the reference layout, as `pixelx export` writes it.
    export: bool,
    /// SHA-256 of the source file: a changed file (a new best epoch) is uploaded again.
    sha: String,
}

/// What one run still has to send.
struct RunWork {
    run: RunSummary,
    status: RunStatus,
    start_ms: i64,
    end_ms: Option<i64>,
    tags: Vec<(String, String)>,
    tags_key: String,
    send_params: bool,
    metrics: Vec<MetricRow>,
    artifacts: Vec<Artifact>,
    status_key: String,
    send_status: bool,
}

impl RunWork {
    fn is_empty(&self, state: &SentState) -> bool {
        state.get(&self.run.id, "run").is_some()
            && !self.send_params
            && state.get(&self.run.id, "tags") == Some(self.tags_key.as_str())
            && self.metrics.is_empty()
            && self.artifacts.is_empty()
            && !self.send_status
    }
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

/// What `run` has that the server lacks, by the sent state.
fn plan_run(
    registry: &Registry,
    state: &SentState,
    runs_dir: &Path,
    run: RunSummary,
    sample_epochs: &[u32],
) -> Result<RunWork> {
    let id = run.id.clone();
    let status = run.status;
    // A run that failed before it started training has no start: it is shown from when it was
    // queued (its first event), so that MLflow still orders it among its experiment's runs.
    let start_ms = match run.started_at.as_deref().and_then(mapping::millis) {
        Some(ms) => ms,
        None => registry
            .events(&id)?
            .first()
            .and_then(|(_, at, _)| mapping::millis(at))
            .unwrap_or(0),
    };
    let end_ms = run
        .finished_at
        .as_deref()
        .filter(|_| status.is_final() || status == RunStatus::Interrupted)
        .and_then(mapping::millis);
    let prune_reason = match (status, &run.error) {
        (RunStatus::Pruned, Some(e)) => Some(e.clone()),
        (RunStatus::Pruned, None) => registry
            .events(&id)?
            .into_iter()
            .rev()
            .find(|(kind, _, detail)| {
                kind == "decision" && detail.as_deref().is_some_and(|d| d.starts_with("prune"))
            })
            .and_then(|(_, _, detail)| detail),
        _ => None,
    };
    let tags = mapping::tags(&run, prune_reason.as_deref());
    // The tags themselves are the record (nothing secret): a later sync removes those that no
    // longer apply, such as the prune reason of a run resumed since.
    let tags_key = serde_json::to_string(&tags)?;
    let metrics: Vec<MetricRow> = registry
        .metric_history(&id)?
        .into_iter()
        .filter(|m| {
            state
                .get(&id, &format!("metric:{}", m.name))
                .and_then(|s| s.parse::<i64>().ok())
                .is_none_or(|sent| m.step > sent)
        })
        .collect();
    let dir = RunDir::new(runs_dir, &id);
    let mut artifacts = Vec::new();
    let mut add = |dest: String, source: PathBuf, export: bool| -> Result<()> {
        if !source.is_file() {
            return Ok(());
        }
        let sha = crate::weights::file_sha256(&source)?;
        if state.get(&id, &format!("artifact:{dest}")) != Some(sha.as_str()) {
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

fn count_dry(summary: &mut SyncSummary, state: &SentState, w: &RunWork) {
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

/// The MLflow experiment named as the pixelx one, created if missing. When the server's id for it
/// differs from the one recorded, the server's store was replaced: what was recorded as sent to
/// it for that experiment's runs is forgotten, so they are sent again.
fn ensure_experiment(
    client: &Client,
    state: &mut SentState,
    registry: &Registry,
    name: &str,
) -> Result<String> {
    let item = format!("experiment:{name}");
    let found = match client.get("experiments/get-by-name", &[("experiment_name", name)]) {
        Ok(answer) => Some(answer),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };
    let id = match found {
        Some(answer) => {
            let exp = &answer["experiment"];
            if exp["lifecycle_stage"].as_str() == Some("deleted") {
                bail!(
                    "experiment `{name}` is deleted in MLflow at {} (restore it there, or delete it for good with `mlflow gc`, then sync again)",
                    client.server()
                );
            }
            string_field(exp, "experiment_id", client, "experiments/get-by-name")?
        }
        None => {
            let answer = client.post("experiments/create", &json!({ "name": name }))?;
            string_field(&answer, "experiment_id", client, "experiments/create")?
        }
    };
    if state.get(NO_RUN, &item).is_some_and(|known| known != id) {
        let ids: Vec<String> = registry
            .summaries(&RunFilter {
                experiment: Some(name.to_owned()),
                ..RunFilter::default()
            })?
            .into_iter()
            .map(|r| r.id)
            .collect();
        state.forget_runs(&ids)?;
    }
    state.set(NO_RUN, &item, &id)?;
    Ok(id)
}

fn string_field(v: &Value, key: &str, client: &Client, call: &str) -> Result<String> {
    match &v[key] {
        Value::String(s) => Ok(s.clone()),
        _ => Err(MlflowError::BadAnswer {
            server: client.server().to_owned(),
            call: call.to_owned(),
            cause: format!("no `{key}` in {v}"),
        }
        .into()),
    }
}

/// The MLflow run of a pixelx run (its id, artifact URI): recorded, found by its tag, or created.
fn ensure_run(
    client: &Client,
    state: &mut SentState,
    exp: &str,
    w: &RunWork,
    summary: &mut SyncSummary,
) -> Result<(String, String)> {
    let id = &w.run.id;
    if let Some(known) = state.get(id, "run") {
        let v: Value = serde_json::from_str(known).context("a bad `run` row in mlflow_sync")?;
        if let (Some(run), Some(uri)) = (v["run_id"].as_str(), v["artifact_uri"].as_str()) {
            return Ok((run.to_owned(), uri.to_owned()));
        }
    }
    // A sync stopped between creating the run and recording it finds it here.
    let search = json!({
        "experiment_ids": [exp],
        "filter": format!("tags.`{}` = '{id}'", mapping::TAG_RUN_ID),
        "max_results": 1,
    });
    let found = client.post("runs/search", &search)?;
    let info = match found["runs"].get(0) {
        Some(run) => run["info"].clone(),
        None => {
            let create = json!({
                "experiment_id": exp,
                "run_name": id,
                "start_time": w.start_ms,
                "tags": [{ "key": mapping::TAG_RUN_ID, "value": id }],
            });
            let answer = client.post("runs/create", &create)?;
            summary.runs_created += 1;
            answer["run"]["info"].clone()
        }
    };
    let run_id = string_field(&info, "run_id", client, "runs/create")?;
    let artifact_uri = string_field(&info, "artifact_uri", client, "runs/create")?;
    let record = json!({ "run_id": run_id, "artifact_uri": artifact_uri });
    state.set(id, "run", &record.to_string())?;
    Ok((run_id, artifact_uri))
}

fn push_run(
    client: &Client,
    state: &mut SentState,
    exp: &str,
    w: &RunWork,
    summary: &mut SyncSummary,
) -> Result<()> {
    let id = &w.run.id;
    let (mlflow_run, artifact_uri) = ensure_run(client, state, exp, w, summary)?;
    if w.send_params {
        let params = mapping::params(&w.run);
        for chunk in params.chunks(mapping::MAX_PARAMS_PER_BATCH) {
            client.post(
                "runs/log-batch",
                &json!({ "run_id": mlflow_run, "params": chunk }),
            )?;
        }
        state.set(id, "params", "sent")?;
        summary.params += params.len();
    }
    if state.get(id, "tags") != Some(w.tags_key.as_str()) {
        let tags: Vec<Value> = w
            .tags
            .iter()
            .map(|(k, v)| json!({ "key": k, "value": v }))
            .collect();
        client.post("runs/log-batch", &json!({ "run_id": mlflow_run, "tags": tags }))?;
        let before: Vec<(String, String)> = state
            .get(id, "tags")
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        for (key, _) in before.iter().filter(|(k, _)| !w.tags.iter().any(|(n, _)| n == k)) {
            match client.post("runs/delete-tag", &json!({ "run_id": mlflow_run, "key": key })) {
                // Gone already (a sync stopped after deleting it).
                Err(e) if e.is_not_found() => {}
                other => {
                    other?;
                }
            }
        }
        state.set(id, "tags", &w.tags_key)?;
        summary.tag_updates += 1;
    }
    for chunk in w.metrics.chunks(mapping::MAX_METRICS_PER_BATCH) {
        let metrics: Vec<Value> = chunk
            .iter()
            .map(|m| mapping::metric(&m.name, m.step, m.value, w.start_ms))
            .collect();
        client.post(
            "runs/log-batch",
            &json!({ "run_id": mlflow_run, "metrics": metrics }),
        )?;
        // The rows come by name then step: the last of each name in a chunk is its furthest.
        let mut last: HashMap<&str, i64> = HashMap::new();
        for m in chunk {
            last.insert(&m.name, m.step);
        }
        for (name, step) in last {
            state.set(id, &format!("metric:{name}"), &step.to_string())?;
        }
        summary.metric_values += chunk.len();
    }
    if !w.artifacts.is_empty() {
        match mapping::proxied_artifact_root(&artifact_uri) {
            Some(root) => {
                for a in &w.artifacts {
                    let bytes = artifact_bytes(a)?;
                    client.put_artifact(&format!("{root}/{}", a.dest), &bytes)?;
                    state.set(id, &format!("artifact:{}", a.dest), &a.sha)?;
                    summary.artifacts += 1;
                }
            }
            None => {
                summary.artifacts_skipped = Some(format!(
                    "the server stores artifacts at {artifact_uri}, which it does not serve; start it with --serve-artifacts to receive checkpoints, samples and configs"
                ));
            }
        }
    }
    if w.send_status {
        let mut update = json!({ "run_id": mlflow_run, "status": mapping::mlflow_status(w.status) });
        if let Some(end) = w.end_ms {
            update["end_time"] = json!(end);
        }
        client.post("runs/update", &update)?;
        state.set(id, "status", &w.status_key)?;
        summary.status_updates += 1;
    }
    Ok(())
}

/// The bytes to upload: the file, or for the best checkpoint its model weights in the reference
/// layout with the config in the metadata (the optimiser's moments left out, as `pixelx export`).
fn artifact_bytes(a: &Artifact) -> Result<Vec<u8>> {
    if !a.export {
        return std::fs::read(&a.source).with_context(|| format!("reading {}", a.source.display()));
    }
    let (vs, model, ckpt) = crate::train::checkpoint::load_model(&a.source, tch::Device::Cpu)?;
    let meta = crate::train::checkpoint::metadata(&ckpt.config, &model.spec)?;
    crate::weights::to_bytes(&crate::weights::model_tensors(&vs), meta)
}
