//! Reading the registry for reports: one summary per run, built with a few set-wide queries.

use std::collections::HashMap;

use anyhow::Result;
use serde::Serialize;

use super::Registry;

/// One recorded metric value: (name, step, epoch for per-epoch metrics, value).
pub type MetricRow = (String, i64, Option<i64>, f64);

/// Which runs a report covers.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub experiment: Option<String>,
    /// `key=value` conditions on run parameters; numbers compare numerically.
    pub conditions: Vec<(String, String)>,
    pub status: Option<String>,
    /// One run only (a full id); its metrics are then read alone, not every run's.
    pub run_id: Option<String>,
}

impl RunFilter {
    pub fn run(id: &str) -> Self {
        Self {
            run_id: Some(id.to_owned()),
            ..Self::default()
        }
    }
}

/// The best epoch of a run by test `bpd8` (ties broken by `bpd`).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct BestEpoch {
    pub epoch: u32,
    pub bpd8: f64,
    pub bpd: f64,
    pub nll: f64,
}

/// Per-epoch values of one run, for curves.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Curves {
    pub epochs: Vec<u32>,
    pub test_bpd8: Vec<f64>,
    pub test_bpd: Vec<f64>,
    pub train_loss: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub id: String,
    pub experiment: String,
    pub status: String,
    pub device: Option<String>,
    pub params: serde_json::Map<String, serde_json::Value>,
    pub best: Option<BestEpoch>,
    pub images_per_sec: Option<f64>,
    pub wall_seconds: Option<f64>,
    pub checkpoint: Option<String>,
    pub samples: Option<String>,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    #[serde(skip)]
    pub curves: Curves,
}

fn param_matches(params: &serde_json::Map<String, serde_json::Value>, key: &str, want: &str) -> bool {
    let Some(v) = params.get(key) else { return false };
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match (text.parse::<f64>(), want.parse::<f64>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => text == want,
    }
}

/// A run's parameters from its stored config. Configs recorded before a parameter existed are
/// read through `RunConfig`, which fills in its default, so every run shows every parameter.
fn stored_params(json: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
    let value = match serde_json::from_str::<crate::config::RunConfig>(json) {
        Ok(config) => serde_json::to_value(config)?,
        Err(_) => serde_json::from_str(json)?,
    };
    Ok(match value {
        serde_json::Value::Object(m) => m,
        _ => Default::default(),
    })
}

impl Registry {
    /// Summaries of the runs matching `filter`, in creation order.
    pub fn summaries(&self, filter: &RunFilter) -> Result<Vec<RunSummary>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT r.id, e.name, r.status, r.device, r.config_json, r.error, r.started_at, r.finished_at
             FROM runs r JOIN experiments e ON e.id = r.experiment_id
             WHERE (?1 IS NULL OR e.name = ?1) AND (?2 IS NULL OR r.status = ?2)
               AND (?3 IS NULL OR r.id = ?3)
             ORDER BY r.created_at, r.id",
        )?;
        let args = rusqlite::params![filter.experiment, filter.status, filter.run_id];
        let rows = stmt.query_map(args, |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<String>>(7)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, experiment, status, device, json, error, started_at, finished_at) = row?;
            let params = stored_params(&json)?;
            if !filter
                .conditions
                .iter()
                .all(|(k, v)| param_matches(&params, k, v))
            {
                continue;
            }
            out.push(RunSummary {
                id,
                experiment,
                status,
                device,
                params,
                best: None,
                images_per_sec: None,
                wall_seconds: None,
                checkpoint: None,
                samples: None,
                error,
                started_at,
                finished_at,
                curves: Curves::default(),
            });
        }
        self.attach_results(&mut out, filter.run_id.as_deref())?;
        Ok(out)
    }

    /// Fills in metrics, best epoch, checkpoint and samples with one query per table (over one
    /// run's rows only when `only` names it).
    fn attach_results(&self, runs: &mut [RunSummary], only: Option<&str>) -> Result<()> {
        let index: HashMap<String, usize> = runs.iter().enumerate().map(|(i, r)| (r.id.clone(), i)).collect();
        let conn = self.conn();
        let mut per_epoch: Vec<HashMap<u32, HashMap<String, f64>>> = vec![HashMap::new(); runs.len()];
        // A plain `run_id = ?1` (not `?1 IS NULL OR …`) so SQLite can use `metrics_by_run`.
        let mut stmt = conn.prepare(if only.is_some() {
            "SELECT run_id, name, epoch, value FROM metrics WHERE run_id = ?1 AND epoch IS NOT NULL"
        } else {
            "SELECT run_id, name, epoch, value FROM metrics WHERE ?1 IS NULL AND epoch IS NOT NULL"
        })?;
        let rows = stmt.query_map([only], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, u32>(2)?,
                r.get::<_, f64>(3)?,
            ))
        })?;
        for row in rows {
            let (run, name, epoch, value) = row?;
            if let Some(&i) = index.get(&run) {
                per_epoch[i].entry(epoch).or_default().insert(name, value);
            }
        }
        for (run, epochs) in runs.iter_mut().zip(per_epoch) {
            let mut sorted: Vec<(u32, HashMap<String, f64>)> = epochs.into_iter().collect();
            sorted.sort_by_key(|(e, _)| *e);
            let get = |m: &HashMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(f64::NAN);
            for (epoch, m) in &sorted {
                run.curves.epochs.push(*epoch);
                run.curves.test_bpd8.push(get(m, "test_bpd8"));
                run.curves.test_bpd.push(get(m, "test_bpd"));
                run.curves.train_loss.push(get(m, "epoch_train_loss"));
            }
            run.best = sorted
                .iter()
                .filter(|(_, m)| m.contains_key("test_bpd8"))
                .map(|(e, m)| BestEpoch {
                    epoch: *e,
                    bpd8: get(m, "test_bpd8"),
                    bpd: get(m, "test_bpd"),
                    nll: get(m, "test_nll"),
                })
                .min_by(|a, b| a.bpd8.total_cmp(&b.bpd8).then(a.bpd.total_cmp(&b.bpd)));
            let speeds: Vec<f64> = sorted
                .iter()
                .filter_map(|(_, m)| m.get("images_per_sec").copied())
                .collect();
            if !speeds.is_empty() {
                run.images_per_sec = Some(speeds.iter().sum::<f64>() / speeds.len() as f64);
                run.wall_seconds = Some(sorted.iter().filter_map(|(_, m)| m.get("epoch_seconds")).sum());
            }
        }
        let mut stmt = conn.prepare(
            "SELECT run_id, path FROM checkpoints WHERE is_best = 1 AND (?1 IS NULL OR run_id = ?1) ORDER BY id",
        )?;
        for row in stmt.query_map([only], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (run, path) = row?;
            if let Some(&i) = index.get(&run) {
                let best = std::path::Path::new(&path).with_file_name("best.safetensors");
                runs[i].checkpoint = Some(if best.exists() {
                    best.display().to_string()
                } else {
                    path
                });
            }
        }
        let mut stmt = conn
            .prepare("SELECT run_id, epoch, path FROM samples WHERE ?1 IS NULL OR run_id = ?1 ORDER BY id")?;
        for row in stmt.query_map([only], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, String>(2)?,
            ))
        })? {
            let (run, epoch, path) = row?;
            if let Some(&i) = index.get(&run) {
                if runs[i].best.is_some_and(|b| b.epoch == epoch) || runs[i].samples.is_none() {
                    runs[i].samples = Some(path);
                }
            }
        }
        Ok(())
    }

    /// Metric history of one run, by name then step.
    pub fn metric_history(&self, run_id: &str) -> Result<Vec<MetricRow>> {
        let mut stmt = self
            .conn()
            .prepare("SELECT name, step, epoch, value FROM metrics WHERE run_id = ?1 ORDER BY name, step")?;
        let rows = stmt.query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// State changes of one run: (status, at, detail).
    pub fn events(&self, run_id: &str) -> Result<Vec<(String, String, Option<String>)>> {
        let mut stmt = self
            .conn()
            .prepare("SELECT status, at, detail FROM run_events WHERE run_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Run ids starting with `prefix` (so users can type a short id).
    pub fn find_runs(&self, prefix: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn()
            .prepare("SELECT id FROM runs WHERE id LIKE ?1 || '%' ORDER BY id")?;
        let rows = stmt.query_map([prefix], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// The latest recorded position of a running run, for progress lines.
#[derive(Debug, Default, Clone)]
pub struct LatestProgress {
    pub epochs_done: i64,
    pub step: i64,
    pub loss: Option<f64>,
    pub images_per_sec: Option<f64>,
}

impl Registry {
    pub fn latest_progress(&self, run_id: &str) -> Result<LatestProgress> {
        let conn = self.conn();
        let (step, loss): (Option<i64>, Option<f64>) = conn.query_row(
            "SELECT step, value FROM metrics WHERE run_id = ?1 AND name = 'train_loss' ORDER BY step DESC LIMIT 1",
            [run_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        ).unwrap_or((None, None));
        let epochs_done: i64 = conn.query_row(
            "SELECT COUNT(*) FROM metrics WHERE run_id = ?1 AND name = 'test_bpd8'",
            [run_id],
            |r| r.get(0),
        )?;
        let images_per_sec: Option<f64> = conn.query_row(
            "SELECT value FROM metrics WHERE run_id = ?1 AND name = 'images_per_sec' ORDER BY step DESC LIMIT 1",
            [run_id],
            |r| r.get(0),
        ).ok();
        Ok(LatestProgress {
            epochs_done,
            step: step.unwrap_or(0),
            loss,
            images_per_sec,
        })
    }
}
