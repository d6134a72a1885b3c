//! Sending a run's planned work to the server, recording each part in the sent state as the
//! server confirms it, so that a sync stopped anywhere continues where it stopped.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::client::{Client, MlflowError};
use super::mapping;
use super::plan::{Artifact, RunWork, SyncSummary};
use super::state::{SentState, NO_RUN};
use crate::registry::{Registry, RunFilter};

/// The MLflow experiment named as the pixelx one, created if missing. When the server's id for it
/// differs from the one recorded, the server's store was replaced: what was recorded as sent to
/// it for that experiment's runs is forgotten, so they are sent again.
pub(super) fn ensure_experiment(
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

/// Sends what `w` planned: creates or finds its MLflow run, then its parameters, tags, metric
/// values, artefacts and status, each recorded as sent once the server has it.
pub(super) fn push_run(
    client: &Client,
    state: &mut SentState,
    exp: &str,
    w: &RunWork,
    summary: &mut SyncSummary,
) -> Result<()> {
    let (mlflow_run, artifact_uri) = ensure_run(client, state, exp, w, summary)?;
    let to = Target {
        client,
        mlflow_run: &mlflow_run,
        id: &w.run.id,
    };
    if w.send_params {
        push_params(&to, state, w, summary)?;
    }
    if state.get(to.id, "tags") != Some(w.tags_key.as_str()) {
        push_tags(&to, state, w, summary)?;
    }
    push_metrics(&to, state, w, summary)?;
    if !w.artifacts.is_empty() {
        push_artifacts(&to, state, &artifact_uri, &w.artifacts, summary)?;
    }
    if w.send_status {
        let mut update = json!({ "run_id": mlflow_run, "status": mapping::mlflow_status(w.status) });
        if let Some(end) = w.end_ms {
            update["end_time"] = json!(end);
        }
        client.post("runs/update", &update)?;
        state.set(to.id, "status", &w.status_key)?;
        summary.status_updates += 1;
    }
    Ok(())
}

/// Where a run's work goes: the client, the MLflow run, and the pixelx run id it is recorded
/// under in the sent state.
struct Target<'a> {
    client: &'a Client,
    mlflow_run: &'a str,
    id: &'a str,
}

fn push_params(to: &Target, state: &mut SentState, w: &RunWork, summary: &mut SyncSummary) -> Result<()> {
    let params = mapping::params(&w.run);
    for chunk in params.chunks(mapping::MAX_PARAMS_PER_BATCH) {
        to.client.post(
            "runs/log-batch",
            &json!({ "run_id": to.mlflow_run, "params": chunk }),
        )?;
    }
    state.set(to.id, "params", "sent")?;
    summary.params += params.len();
    Ok(())
}

/// Sets the run's tags and deletes those sent before that no longer apply.
fn push_tags(to: &Target, state: &mut SentState, w: &RunWork, summary: &mut SyncSummary) -> Result<()> {
    let tags: Vec<Value> = w
        .tags
        .iter()
        .map(|(k, v)| json!({ "key": k, "value": v }))
        .collect();
    to.client.post(
        "runs/log-batch",
        &json!({ "run_id": to.mlflow_run, "tags": tags }),
    )?;
    let before: Vec<(String, String)> = state
        .get(to.id, "tags")
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    for (key, _) in before.iter().filter(|(k, _)| !w.tags.iter().any(|(n, _)| n == k)) {
        match to
            .client
            .post("runs/delete-tag", &json!({ "run_id": to.mlflow_run, "key": key }))
        {
            // Gone already (a sync stopped after deleting it).
            Err(e) if e.is_not_found() => {}
            other => {
                other?;
            }
        }
    }
    state.set(to.id, "tags", &w.tags_key)?;
    summary.tag_updates += 1;
    Ok(())
}

fn push_metrics(to: &Target, state: &mut SentState, w: &RunWork, summary: &mut SyncSummary) -> Result<()> {
    for chunk in w.metrics.chunks(mapping::MAX_METRICS_PER_BATCH) {
        let metrics: Vec<Value> = chunk
            .iter()
            .map(|m| mapping::metric(&m.name, m.step, m.value, w.start_ms))
            .collect();
        to.client.post(
            "runs/log-batch",
            &json!({ "run_id": to.mlflow_run, "metrics": metrics }),
        )?;
        // The rows come by name then step: the last of each name in a chunk is its furthest.
        let mut last: HashMap<&str, i64> = HashMap::new();
        for m in chunk {
            last.insert(&m.name, m.step);
        }
        for (name, step) in last {
            state.set(to.id, &format!("metric:{name}"), &step.to_string())?;
        }
        summary.metric_values += chunk.len();
    }
    Ok(())
}

/// Uploads the artefacts through the server's artifact proxy, or says why not when the server
/// stores them where it does not serve them.
fn push_artifacts(
    to: &Target,
    state: &mut SentState,
    artifact_uri: &str,
    artifacts: &[Artifact],
    summary: &mut SyncSummary,
) -> Result<()> {
    let Some(root) = mapping::proxied_artifact_root(artifact_uri) else {
        summary.artifacts_skipped = Some(format!(
            "the server stores artifacts at {artifact_uri}, which it does not serve; start it with --serve-artifacts to receive checkpoints, samples and configs"
        ));
        return Ok(());
    };
    for a in artifacts {
        let bytes = artifact_bytes(a)?;
        to.client.put_artifact(&format!("{root}/{}", a.dest), &bytes)?;
        state.set(to.id, &format!("artifact:{}", a.dest), &a.sha)?;
        summary.artifacts += 1;
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
