//! Reading the registry for reports: one summary per run, built with a few set-wide queries.

use std::collections::HashMap;

use anyhow::Result;
use rusqlite::OptionalExtension;
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
    pub status: Option<super::RunStatus>,
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
///
/// Artefact paths in a summary (`checkpoint`, `samples`) are relative to the run's folder,
/// `<runs dir>/<id>/`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Curves {
    pub epochs: Vec<u32>,
    pub test_bpd8: Vec<f64>,
    pub test_bpd: Vec<f64>,
    pub train_loss: Vec<f64>,
}

/// Where a running run stands, from its journal's latest `steps` line.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Progress {
    /// The epoch being trained, 1-based.
    pub epoch: u32,
    pub step_in_epoch: i64,
    pub steps_per_epoch: i64,
    pub images_per_sec: Option<f64>,
    /// When this was recorded.
    pub at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub id: String,
    pub experiment: String,
    pub status: String,
    /// How the experiment chooses its runs (grid, random, tpe).
    pub method: String,
    /// The trial number within an adaptive search.
    pub trial: Option<i64>,
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
    /// Running runs: the epoch and step being trained.
    pub progress: Option<Progress>,
    /// Recorded as running on this host, but its process is gone.
    pub process_gone: bool,
    /// The Slurm job training it, if any.
    pub job: Option<String>,
    /// Bytes of the run's journal ingested (to tell whether it holds newer results).
    #[serde(skip)]
    pub journal_offset: u64,
    #[serde(skip)]
    pub curves: Curves,
}

/// A path the registry stored for a run's artefact, relative to the run's folder. Older
/// registries stored the path the run was created under (`runs/<id>/checkpoints/...`, possibly
/// absolute); the part after the run's id is what locates it now.
pub fn run_relative(stored: &str, id: &str) -> String {
    let marker = format!("{id}/");
    match stored.rfind(&marker) {
        Some(i) if i == 0 || stored[..i].ends_with('/') => stored[i + marker.len()..].to_owned(),
        _ => stored.to_owned(),
    }
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
        // One run is looked up by its key (`r.id = ?3`): with `?3 IS NULL OR …` SQLite scans
        // every run, which a run's dashboard page would pay at every render.
        let one_run = if filter.run_id.is_some() {
            "r.id = ?3"
        } else {
            "?3 IS NULL"
        };
        let mut stmt = conn.prepare(&format!(
            "SELECT r.id, e.name, r.status, r.device, r.config_json, r.error, r.started_at, r.finished_at,
                    COALESCE(r.method, e.search_method), r.trial, r.epoch, r.step_in_epoch, r.steps_per_epoch, r.images_per_sec,
                    r.progress_at, r.host, r.pid, r.job_id, r.journal_offset
             FROM runs r JOIN experiments e ON e.id = r.experiment_id
             WHERE (?1 IS NULL OR e.name = ?1) AND (?2 IS NULL OR r.status = ?2) AND {one_run}
             ORDER BY r.created_at, r.id"
        ))?;
        let status_filter = filter.status.map(|s| s.as_str());
        let args = rusqlite::params![filter.experiment, status_filter, filter.run_id];
        let this_host = crate::host::hostname();
        let rows = stmt.query_map(args, |r| {
            let progress = match (r.get::<_, Option<u32>>(10)?, r.get::<_, Option<i64>>(12)?) {
                (Some(epoch), Some(steps_per_epoch)) => Some(Progress {
                    epoch,
                    step_in_epoch: r.get::<_, Option<i64>>(11)?.unwrap_or(0),
                    steps_per_epoch,
                    images_per_sec: r.get(13)?,
                    at: r.get(14)?,
                }),
                _ => None,
            };
            let host: Option<String> = r.get(15)?;
            let pid: Option<i64> = r.get(16)?;
            let job: Option<String> = r.get(17)?;
            let status: String = r.get(2)?;
            let process_gone = status == "running"
                && job.is_none()
                && host.as_deref() == Some(this_host.as_str())
                && pid.is_none_or(|p| !crate::host::process_alive(p));
            Ok((
                (
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    status,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                ),
                (
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, Option<i64>>(9)?,
                ),
                (progress, process_gone, r.get::<_, i64>(18)?, job),
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (
                (id, experiment, status, device, json),
                (error, started_at, finished_at, method, trial),
                (progress, process_gone, offset, job),
            ) = row?;
            let params = stored_params(&json)?;
            if !filter
                .conditions
                .iter()
                .all(|(k, v)| param_matches(&params, k, v))
            {
                continue;
            }
            let running = status == "running";
            out.push(RunSummary {
                id,
                experiment,
                status,
                method,
                trial,
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
                progress: progress.filter(|_| running),
                process_gone,
                job,
                journal_offset: offset.max(0) as u64,
                curves: Curves::default(),
            });
        }
        self.attach_results(&mut out, filter.run_id.as_deref())?;
        Ok(out)
    }

    /// Fills in results, checkpoint and samples with one query per table (over one run's rows
    /// only when `only` names it). Results come from `run_results`, one row per run kept up to
    /// date at ingestion, so no metric row is read; a run without that row (none is expected)
    /// has its results computed from its own epoch rows.
    fn attach_results(&self, runs: &mut [RunSummary], only: Option<&str>) -> Result<()> {
        let index: HashMap<String, usize> = runs.iter().enumerate().map(|(i, r)| (r.id.clone(), i)).collect();
        let conn = self.conn();
        let mut found = vec![false; runs.len()];
        // A plain `run_id = ?1` (not `?1 IS NULL OR …`) so SQLite uses the primary key.
        let mut stmt = conn.prepare(if only.is_some() {
            "SELECT run_id, best_epoch, best_bpd8, best_bpd, best_nll, images_per_sec, wall_seconds, curves
             FROM run_results WHERE run_id = ?1"
        } else {
            "SELECT run_id, best_epoch, best_bpd8, best_bpd, best_nll, images_per_sec, wall_seconds, curves
             FROM run_results WHERE ?1 IS NULL"
        })?;
        let rows = stmt.query_map([only], |r| {
            let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
            let best = r
                .get::<_, Option<u32>>(1)?
                .map(|epoch| -> rusqlite::Result<BestEpoch> {
                    Ok(BestEpoch {
                        epoch,
                        bpd8: nan(r.get(2)?),
                        bpd: nan(r.get(3)?),
                        nll: nan(r.get(4)?),
                    })
                });
            Ok((
                r.get::<_, String>(0)?,
                best.transpose()?,
                r.get::<_, Option<f64>>(5)?,
                r.get::<_, Option<f64>>(6)?,
                r.get::<_, String>(7)?,
            ))
        })?;
        for row in rows {
            let (run, best, images_per_sec, wall_seconds, curves) = row?;
            if let Some(&i) = index.get(&run) {
                let stored: StoredCurves = serde_json::from_str(&curves).unwrap_or_default();
                runs[i].best = best;
                runs[i].images_per_sec = images_per_sec;
                runs[i].wall_seconds = wall_seconds;
                runs[i].curves = stored.into_curves();
                found[i] = true;
            }
        }
        for (run, _) in runs.iter_mut().zip(&found).filter(|(_, f)| !**f) {
            let r = results_from_metrics(conn, &run.id)?;
            run.best = r.best;
            run.images_per_sec = r.images_per_sec;
            run.wall_seconds = r.wall_seconds;
            run.curves = r.curves;
        }
        let mut stmt = conn.prepare(if only.is_some() {
            "SELECT run_id, path FROM checkpoints WHERE is_best = 1 AND run_id = ?1 ORDER BY id"
        } else {
            "SELECT run_id, path FROM checkpoints WHERE is_best = 1 AND ?1 IS NULL ORDER BY id"
        })?;
        for row in stmt.query_map([only], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (run, _) = row?;
            if let Some(&i) = index.get(&run) {
                // The best epoch's weights are also kept as `best.safetensors`, which outlives
                // the epoch checkpoints that are cleaned up.
                runs[i].checkpoint = Some("checkpoints/best.safetensors".into());
            }
        }
        let mut stmt = conn.prepare(if only.is_some() {
            "SELECT run_id, epoch, path FROM samples WHERE run_id = ?1 ORDER BY id"
        } else {
            "SELECT run_id, epoch, path FROM samples WHERE ?1 IS NULL ORDER BY id"
        })?;
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
                    runs[i].samples = Some(run_relative(&path, &run));
                }
            }
        }
        Ok(())
    }

    /// Recomputes every run's results row from its metrics, in one transaction: what the
    /// migration that adds `run_results` does, and a repair for rows written by other tools.
    pub fn rebuild_results(&mut self) -> Result<()> {
        let tx = self.write()?;
        backfill_results(&tx)?;
        tx.commit()?;
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

/// A run as a study sees it: its status, trial number, parameters and the per-epoch values of
/// one metric.
#[derive(Debug, Clone)]
pub struct TrialRow {
    pub id: String,
    pub status: super::RunStatus,
    pub trial: Option<i64>,
    /// The search method that proposed it.
    pub method: Option<String>,
    pub params: serde_json::Map<String, serde_json::Value>,
    pub values: std::collections::BTreeMap<u32, f64>,
}

impl Registry {
    /// Every run of `experiment` with its values of the per-epoch `metric`, in creation order.
    pub fn trial_rows(&self, experiment: &str, metric: &str) -> Result<Vec<TrialRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT r.id, r.status, r.trial, r.config_json, r.method FROM runs r JOIN experiments e ON e.id = r.experiment_id
             WHERE e.name = ?1 ORDER BY r.created_at, r.id",
        )?;
        let mut rows = Vec::new();
        let mut index = HashMap::new();
        for row in stmt.query_map([experiment], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })? {
            let (id, status, trial, json, method) = row?;
            index.insert(id.clone(), rows.len());
            rows.push(TrialRow {
                id,
                status: super::RunStatus::parse(&status)?,
                trial,
                method,
                params: stored_params(&json)?,
                values: Default::default(),
            });
        }
        let mut stmt = conn.prepare(
            "SELECT m.run_id, m.epoch, m.value FROM metrics m
             JOIN runs r ON r.id = m.run_id JOIN experiments e ON e.id = r.experiment_id
             WHERE e.name = ?1 AND m.name = ?2 AND m.epoch IS NOT NULL",
        )?;
        for row in stmt.query_map([experiment, metric], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?, r.get::<_, f64>(2)?))
        })? {
            let (id, epoch, value) = row?;
            if let Some(&i) = index.get(&id) {
                rows[i].values.insert(epoch, value);
            }
        }
        Ok(rows)
    }

    /// Where a running run stands, from its latest ingested progress.
    pub fn progress(&self, run_id: &str) -> Result<Option<Progress>> {
        let row = self.conn().query_row(
            "SELECT epoch, step_in_epoch, steps_per_epoch, images_per_sec, progress_at FROM runs WHERE id = ?1",
            [run_id],
            |r| {
                Ok((
                    r.get::<_, Option<u32>>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<f64>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            },
        );
        Ok(match row {
            Ok((Some(epoch), step, Some(steps_per_epoch), images_per_sec, at)) => Some(Progress {
                epoch,
                step_in_epoch: step.unwrap_or(0),
                steps_per_epoch,
                images_per_sec,
                at,
            }),
            _ => None,
        })
    }
}

impl Registry {
    /// The SHA-256 recorded when run `run_id` wrote the checkpoint at `path` (relative to its
    /// folder, e.g. `checkpoints/epoch-0002.safetensors`); None when none was recorded.
    pub fn recorded_checksum(&self, run_id: &str, path: &str) -> Result<Option<String>> {
        let sum: Option<String> = self
            .conn()
            .query_row(
                "SELECT sha256 FROM checkpoints WHERE run_id = ?1 AND path = ?2 AND sha256 != ''
                 ORDER BY id DESC LIMIT 1",
                [run_id, path],
                |r| r.get(0),
            )
            .optional()?;
        Ok(sum)
    }

    /// The runs that recorded a checkpoint with this SHA-256: who a stray checkpoint belongs to.
    pub fn runs_with_checksum(&self, sha256: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn()
            .prepare("SELECT DISTINCT run_id FROM checkpoints WHERE sha256 = ?1 ORDER BY run_id")?;
        let ids = stmt
            .query_map([sha256], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(ids)
    }
}

/// What `run_results` keeps of a run: its results over the epochs it finished.
#[derive(Debug, Default)]
struct RunResults {
    best: Option<BestEpoch>,
    images_per_sec: Option<f64>,
    wall_seconds: Option<f64>,
    curves: Curves,
}

/// Curves as stored in `run_results.curves` (JSON has no NaN: a missing value is `null`).
#[derive(Debug, Default, Serialize, serde::Deserialize)]
struct StoredCurves {
    epochs: Vec<u32>,
    test_bpd8: Vec<Option<f64>>,
    test_bpd: Vec<Option<f64>>,
    train_loss: Vec<Option<f64>>,
}

impl StoredCurves {
    fn from_curves(c: &Curves) -> Self {
        let opt = |v: &[f64]| v.iter().map(|x| x.is_finite().then_some(*x)).collect();
        Self {
            epochs: c.epochs.clone(),
            test_bpd8: opt(&c.test_bpd8),
            test_bpd: opt(&c.test_bpd),
            train_loss: opt(&c.train_loss),
        }
    }

    fn into_curves(self) -> Curves {
        let nan = |v: Vec<Option<f64>>| v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect();
        Curves {
            epochs: self.epochs,
            test_bpd8: nan(self.test_bpd8),
            test_bpd: nan(self.test_bpd),
            train_loss: nan(self.train_loss),
        }
    }
}

/// A run's results from its epoch rows (the `metrics_by_epoch` index: a few rows per epoch).
fn results_from_metrics(conn: &rusqlite::Connection, run_id: &str) -> Result<RunResults> {
    let mut stmt = conn
        .prepare_cached("SELECT epoch, name, value FROM metrics WHERE run_id = ?1 AND epoch IS NOT NULL")?;
    let mut per_epoch: HashMap<u32, HashMap<String, f64>> = HashMap::new();
    for row in stmt.query_map([run_id], |r| {
        Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?, r.get::<_, f64>(2)?))
    })? {
        let (epoch, name, value) = row?;
        per_epoch.entry(epoch).or_default().insert(name, value);
    }
    let mut sorted: Vec<(u32, HashMap<String, f64>)> = per_epoch.into_iter().collect();
    sorted.sort_by_key(|(e, _)| *e);
    let get = |m: &HashMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(f64::NAN);
    let mut out = RunResults::default();
    for (epoch, m) in &sorted {
        out.curves.epochs.push(*epoch);
        out.curves.test_bpd8.push(get(m, "test_bpd8"));
        out.curves.test_bpd.push(get(m, "test_bpd"));
        out.curves.train_loss.push(get(m, "epoch_train_loss"));
    }
    out.best = sorted
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
        out.images_per_sec = Some(speeds.iter().sum::<f64>() / speeds.len() as f64);
        out.wall_seconds = Some(sorted.iter().filter_map(|(_, m)| m.get("epoch_seconds")).sum());
    }
    Ok(out)
}

/// Recomputes `run_id`'s row of `run_results` from its epoch rows: what ingestion calls after
/// applying a journal's events, in the same transaction.
pub(super) fn refresh_results(conn: &rusqlite::Connection, run_id: &str) -> Result<()> {
    let r = results_from_metrics(conn, run_id)?;
    let finite = |v: f64| v.is_finite().then_some(v);
    let curves = serde_json::to_string(&StoredCurves::from_curves(&r.curves))?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO run_results
             (run_id, best_epoch, best_bpd8, best_bpd, best_nll, images_per_sec, wall_seconds, curves)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(rusqlite::params![
        run_id,
        r.best.map(|b| b.epoch),
        r.best.and_then(|b| finite(b.bpd8)),
        r.best.and_then(|b| finite(b.bpd)),
        r.best.and_then(|b| finite(b.nll)),
        r.images_per_sec,
        r.wall_seconds,
        curves
    ])?;
    Ok(())
}

/// Fills `run_results` for every run of a registry that predates it.
pub(super) fn backfill_results(conn: &rusqlite::Connection) -> Result<()> {
    let ids: Vec<String> = conn
        .prepare("SELECT id FROM runs")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in ids {
        refresh_results(conn, &id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::run_relative;
    use crate::config::{ExperimentInfo, RunConfig};
    use crate::journal::{append, CheckpointRecord, EpochRecord, Event};
    use crate::metrics::EvalMetrics;
    use crate::registry::{Registry, RunFilter};

    fn epoch(run_dir: &std::path::Path, epoch: u32, bpd8: f64) {
        let record = EpochRecord {
            epoch,
            train_loss: 0.2,
            test: EvalMetrics {
                nll: 0.5,
                bpd: bpd8 - 7.0,
                bpd8,
            },
            learning_rate: 1e-3,
            images_per_sec: 100.0 * epoch as f64,
            seconds: 10.0,
        };
        let checkpoint = CheckpointRecord {
            file: format!("epoch-{epoch:04}.safetensors"),
            sha256: "00".into(),
            size: 1,
        };
        let event = Event::Epoch {
            record,
            checkpoint,
            best: true,
            peak_rss_mb: None,
            threads: None,
        };
        append(run_dir, event).unwrap();
    }

    #[test]
    fn results_rows_follow_ingestion_and_a_forced_rerun() {
        let dir = tempfile::tempdir().unwrap();
        let mut reg = Registry::open(&dir.path().join("registry.sqlite")).unwrap();
        let exp = reg
            .upsert_experiment(&ExperimentInfo::named("e", ""), None, Default::default())
            .unwrap();
        let run_dir = dir.path().join("r1");
        std::fs::create_dir_all(&run_dir).unwrap();
        reg.add_run(exp, "r1", &RunConfig::default(), &run_dir, None)
            .unwrap();
        let best = |reg: &Registry| {
            reg.summaries(&RunFilter::run("r1")).unwrap()[0]
                .best
                .map(|b| (b.epoch, b.bpd8))
        };
        assert_eq!(best(&reg), None, "a queued run has no result");
        epoch(&run_dir, 1, 1.5);
        epoch(&run_dir, 2, 1.2);
        reg.ingest("r1", &run_dir).unwrap();
        assert_eq!(best(&reg), Some((2, 1.2)));
        epoch(&run_dir, 3, 1.3);
        reg.ingest("r1", &run_dir).unwrap();
        let runs = reg.summaries(&RunFilter::default()).unwrap();
        assert_eq!(runs[0].curves.epochs, vec![1, 2, 3]);
        assert_eq!(runs[0].curves.test_bpd8, vec![1.5, 1.2, 1.3]);
        assert_eq!(runs[0].images_per_sec, Some(200.0));
        assert_eq!(runs[0].wall_seconds, Some(30.0));
        reg.reset_run("r1").unwrap();
        assert_eq!(best(&reg), None, "a forced rerun forgets the results");
    }

    #[test]
    fn stored_paths_become_run_relative() {
        assert_eq!(
            run_relative("runs/abc/checkpoints/epoch-0001.safetensors", "abc"),
            "checkpoints/epoch-0001.safetensors"
        );
        assert_eq!(
            run_relative("/x/y/abc/samples/epoch-0001.png", "abc"),
            "samples/epoch-0001.png"
        );
        assert_eq!(
            run_relative("checkpoints/best.safetensors", "abc"),
            "checkpoints/best.safetensors"
        );
        assert_eq!(run_relative("xabc/checkpoints/a", "abc"), "xabc/checkpoints/a");
    }
}
