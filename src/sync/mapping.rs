//! How pixelx's records read in MLflow: statuses, times, parameters, tags and metric values.
//! Pure functions, so the mapping is tested without a server.

use serde_json::{json, Value};

use crate::registry::{RunStatus, RunSummary};

/// MLflow's limits on one `runs/log-batch` request.
pub const MAX_METRICS_PER_BATCH: usize = 1000;
pub const MAX_PARAMS_PER_BATCH: usize = 100;
/// MLflow refuses tag values longer than this (characters).
const MAX_TAG_VALUE: usize = 8000;

/// Tag keys pixelx sets on every run it syncs.
pub const TAG_RUN_ID: &str = "pixelx.run_id";
pub const TAG_STATUS: &str = "pixelx.status";
pub const TAG_METHOD: &str = "pixelx.search_method";
pub const TAG_TRIAL: &str = "pixelx.trial";
pub const TAG_PRUNE_REASON: &str = "pixelx.prune_reason";
pub const TAG_ERROR: &str = "pixelx.error";
pub const TAG_EXPERIMENT: &str = "pixelx.experiment";
/// The precision the run trained in (`auto` resolved); its `precision` param is what it asked.
pub const TAG_PRECISION_USED: &str = "pixelx.precision_used";

/// MLflow's run status for a pixelx status. MLflow has no "pruned" or "diverged": a pruned or
/// interrupted run was stopped (KILLED), a diverged one failed; the `pixelx.status` tag keeps
/// the exact one.
pub fn mlflow_status(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Queued => "SCHEDULED",
        RunStatus::Running => "RUNNING",
        RunStatus::Completed => "FINISHED",
        RunStatus::Failed | RunStatus::Diverged => "FAILED",
        RunStatus::Interrupted | RunStatus::Pruned => "KILLED",
    }
}

/// Milliseconds since the Unix epoch of a registry time (RFC 3339).
pub fn millis(at: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// A parameter's value as the registry's `params` table writes it: strings bare, everything
/// else as JSON.
pub fn param_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Every parameter of a run, in MLflow's `{key, value}` form.
pub fn params(run: &RunSummary) -> Vec<Value> {
    run.params
        .iter()
        .map(|(k, v)| json!({ "key": k, "value": param_text(v) }))
        .collect()
}

/// The tags that say where a run comes from and how it ended. `prune_reason` is the pruner's
/// decision for a pruned run.
pub fn tags(run: &RunSummary, prune_reason: Option<&str>) -> Vec<(String, String)> {
    let mut tags = vec![
        (TAG_RUN_ID.to_owned(), run.id.clone()),
        (TAG_EXPERIMENT.to_owned(), run.experiment.clone()),
        (TAG_STATUS.to_owned(), run.status.to_string()),
        (TAG_METHOD.to_owned(), run.method.clone()),
    ];
    if let Some(trial) = run.trial {
        tags.push((TAG_TRIAL.to_owned(), trial.to_string()));
    }
    if let Some(precision) = &run.precision_used {
        tags.push((TAG_PRECISION_USED.to_owned(), precision.clone()));
    }
    if run.status == RunStatus::Pruned {
        if let Some(reason) = prune_reason {
            tags.push((TAG_PRUNE_REASON.to_owned(), truncate(reason)));
        }
    } else if let Some(error) = &run.error {
        tags.push((TAG_ERROR.to_owned(), truncate(error)));
    }
    tags
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_TAG_VALUE - 1) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// One metric value in MLflow's form. Infinite values (a diverged loss) are written as protobuf
/// JSON writes them, as strings, since JSON has no infinity. `timestamp` is fixed per run (its
/// start), so a value sent twice is the same metric, which MLflow stores once.
pub fn metric(name: &str, step: i64, value: f64, timestamp: i64) -> Value {
    let value = if value.is_finite() {
        json!(value)
    } else if value.is_nan() {
        json!("NaN")
    } else if value > 0.0 {
        json!("Infinity")
    } else {
        json!("-Infinity")
    };
    json!({ "key": name, "value": value, "timestamp": timestamp, "step": step })
}

/// Where a run's artefacts go in MLflow, relative to its artifact root.
pub const MODEL_ARTIFACT: &str = "model/model.safetensors";
pub const CONFIG_ARTIFACT: &str = "config.toml";

pub fn sample_artifact(epoch: u32) -> String {
    format!("samples/epoch-{epoch:04}.png")
}

/// The path under `/api/2.0/mlflow-artifacts/artifacts/` of a run's artifact root, when the server
/// proxies artifacts (`mlflow-artifacts:/1/<run>/artifacts`, possibly with a host); None for a
/// store the client would have to write itself (S3, a local path).
pub fn proxied_artifact_root(artifact_uri: &str) -> Option<String> {
    let rest = artifact_uri.strip_prefix("mlflow-artifacts:")?;
    let path = match rest.strip_prefix("//") {
        // `mlflow-artifacts://host:port/path`: the authority is the server's own.
        Some(with_host) => with_host.split_once('/').map_or("", |(_, p)| p),
        None => rest,
    };
    Some(path.trim_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_maps_to_one_of_mlflows() {
        let mlflow = ["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"];
        for s in RunStatus::ALL {
            assert!(mlflow.contains(&mlflow_status(s)), "{s:?}");
        }
        assert_eq!(mlflow_status(RunStatus::Pruned), "KILLED");
        assert_eq!(mlflow_status(RunStatus::Diverged), "FAILED");
    }

    #[test]
    fn times_are_milliseconds_and_infinities_are_strings() {
        assert_eq!(millis("1970-01-01T00:00:01.500Z"), Some(1500));
        assert_eq!(millis("yesterday"), None);
        assert_eq!(metric("l", 3, f64::INFINITY, 0)["value"], "Infinity");
        assert_eq!(metric("l", 3, 0.25, 7)["value"], 0.25);
    }

    #[test]
    fn artifact_roots_are_found_with_or_without_a_host() {
        assert_eq!(
            proxied_artifact_root("mlflow-artifacts:/1/abc/artifacts").as_deref(),
            Some("1/abc/artifacts")
        );
        assert_eq!(
            proxied_artifact_root("mlflow-artifacts://h:5000/1/abc/artifacts").as_deref(),
            Some("1/abc/artifacts")
        );
        assert_eq!(proxied_artifact_root("s3://bucket/1/abc/artifacts"), None);
    }
}
