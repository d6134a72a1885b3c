//! Reading the registry for reports: one summary per run, built with a few set-wide queries.

use std::collections::HashMap;

use anyhow::Result;
use rusqlite::OptionalExtension;

use super::results::{backfill_results, results_from_metrics, StoredCurves};
use super::summary::{
    param_matches, run_relative, stored_params, BestEpoch, Curves, MetricRow, ParamsParser, Progress,
    RunFilter, RunSummary,
};
use super::{Registry, RunStatus};

/// The columns of `runs` a summary reads, in the order [`summary_from_row`] expects them.
const SUMMARY_COLUMNS: &str = "r.id, e.name, r.status, r.device, r.config_json, r.error, r.started_at,
    r.finished_at, COALESCE(r.method, e.search_method), r.trial, r.epoch, r.step_in_epoch,
    r.steps_per_epoch, r.images_per_sec, r.progress_at, r.host, r.pid, r.job_id, r.journal_offset,
    rr.run_id, rr.best_epoch, rr.best_bpd8, rr.best_bpd, rr.best_nll, rr.images_per_sec, rr.wall_seconds, rr.curves,
    r.precision";

/// Where the `run_results` columns start in [`SUMMARY_COLUMNS`].
const RESULTS_AT: usize = 19;
/// Where `r.precision` is, after them.
const PRECISION_AT: usize = 27;

/// A summary from a row of [`SUMMARY_COLUMNS`], with its stored configuration still to parse;
/// its results are filled in from the row's `run_results` part, if it has one (else `found` is
/// false in the returned row).
fn summary_from_row(r: &rusqlite::Row<'_>, this_host: &str) -> rusqlite::Result<(RunSummary, String, bool)> {
    let status: RunStatus = r.get(2)?;
    let progress = match (r.get::<_, Option<u32>>(10)?, r.get::<_, Option<i64>>(12)?) {
        (Some(epoch), Some(steps_per_epoch)) if status == RunStatus::Running => Some(Progress {
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
    let process_gone = status == RunStatus::Running
        && job.is_none()
        && host.as_deref() == Some(this_host)
        && pid.is_none_or(|p| !crate::host::process_alive(p));
    let mut summary = RunSummary {
        id: r.get(0)?,
        experiment: r.get(1)?,
        status,
        method: r.get(8)?,
        trial: r.get(9)?,
        device: r.get(3)?,
        precision_used: r.get(PRECISION_AT)?,
        params: Default::default(),
        best: None,
        images_per_sec: None,
        wall_seconds: None,
        checkpoint: None,
        samples: None,
        error: r.get(5)?,
        started_at: r.get(6)?,
        finished_at: r.get(7)?,
        progress,
        process_gone,
        job,
        journal_offset: r.get::<_, i64>(18)?.max(0) as u64,
        curves: Curves::default(),
    };
    let found = match results_from_row(r, RESULTS_AT)? {
        Some(results) => {
            let stored: StoredCurves = serde_json::from_str(&results.curves).unwrap_or_default();
            summary.best = results.best;
            summary.images_per_sec = results.images_per_sec;
            summary.wall_seconds = results.wall_seconds;
            summary.curves = stored.into_curves();
            true
        }
        None => false,
    };
    Ok((summary, r.get(4)?, found))
}

/// Results of a run as `run_results` keeps them.
struct ResultsRow {
    best: Option<BestEpoch>,
    images_per_sec: Option<f64>,
    wall_seconds: Option<f64>,
    curves: String,
}

/// The `run_results` columns of a row from column `at` on (`run_id` first: NULL when the run
/// has no results row).
fn results_from_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Option<ResultsRow>> {
    if r.get::<_, Option<String>>(at)?.is_none() {
        return Ok(None);
    }
    let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
    let best = match r.get::<_, Option<u32>>(at + 1)? {
        Some(epoch) => Some(BestEpoch {
            epoch,
            bpd8: nan(r.get(at + 2)?),
            bpd: nan(r.get(at + 3)?),
            nll: nan(r.get(at + 4)?),
        }),
        None => None,
    };
    Ok(Some(ResultsRow {
        best,
        images_per_sec: r.get(at + 5)?,
        wall_seconds: r.get(at + 6)?,
        curves: r.get(at + 7)?,
    }))
}

/// The summaries query: every run matching the filter's experiment and status, or one run by
/// its key (`r.id = ?3`: with `?3 IS NULL OR …` SQLite scans every run, which a run's dashboard
/// page would pay at every render).
fn summaries_sql(one_run: bool) -> String {
    let one_run = if one_run { "r.id = ?3" } else { "?3 IS NULL" };
    format!(
        "SELECT {SUMMARY_COLUMNS}
         FROM runs r JOIN experiments e ON e.id = r.experiment_id
              LEFT JOIN run_results rr ON rr.run_id = r.id
         WHERE (?1 IS NULL OR e.name = ?1) AND (?2 IS NULL OR r.status = ?2) AND {one_run}
         ORDER BY r.created_at, r.id"
    )
}

impl Registry {
    /// Summaries of the runs matching `filter`, in creation order.
    pub fn summaries(&self, filter: &RunFilter) -> Result<Vec<RunSummary>> {
        let mut stmt = self.conn().prepare(&summaries_sql(filter.run_id.is_some()))?;
        let args = rusqlite::params![filter.experiment, filter.status, filter.run_id];
        let this_host = crate::host::hostname();
        let mut out = Vec::new();
        let mut parse = ParamsParser::default();
        for row in stmt.query_map(args, |r| summary_from_row(r, &this_host))? {
            let (summary, json, found) = row?;
            let summary = self.complete(summary, &json, found, &mut parse)?;
            let wanted = filter
                .conditions
                .iter()
                .all(|(k, v)| param_matches(&summary.params, k, v));
            if wanted {
                out.push(summary);
            }
        }
        let index: HashMap<String, usize> = out.iter().enumerate().map(|(i, r)| (r.id.clone(), i)).collect();
        self.attach_artefacts(&mut out, &index, filter.run_id.as_deref())?;
        Ok(out)
    }

    /// Summaries of the runs `ids`, in that order (ids the registry lacks are left out): each
    /// read by its key, for views that show a few hundred runs of many.
    pub fn summaries_of(&self, ids: &[String]) -> Result<Vec<RunSummary>> {
        let mut stmt = self.conn().prepare_cached(&summaries_sql(true))?;
        let this_host = crate::host::hostname();
        let mut parse = ParamsParser::default();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let args = rusqlite::params![None::<String>, None::<String>, id];
            let row = stmt
                .query_row(args, |r| summary_from_row(r, &this_host))
                .optional()?;
            if let Some((summary, json, found)) = row {
                let mut one = [self.complete(summary, &json, found, &mut parse)?];
                let index = HashMap::from([(id.clone(), 0)]);
                self.attach_artefacts(&mut one, &index, Some(id))?;
                let [summary] = one;
                out.push(summary);
            }
        }
        Ok(out)
    }

    /// A summary read by [`summary_from_row`] with its parameters parsed and, when it had no
    /// results row (none is expected), its results computed from its own epoch rows.
    fn complete(
        &self,
        mut summary: RunSummary,
        json: &str,
        found: bool,
        parse: &mut ParamsParser,
    ) -> Result<RunSummary> {
        summary.params = parse.params(json)?;
        if !found {
            let r = results_from_metrics(self.conn(), &summary.id)?;
            summary.best = r.best;
            summary.images_per_sec = r.images_per_sec;
            summary.wall_seconds = r.wall_seconds;
            summary.curves = r.curves;
        }
        Ok(summary)
    }

    /// Fills in each run's best checkpoint and sample grid (the best epoch's, else the first).
    fn attach_artefacts(
        &self,
        runs: &mut [RunSummary],
        index: &HashMap<String, usize>,
        only: Option<&str>,
    ) -> Result<()> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(if only.is_some() {
            "SELECT run_id FROM checkpoints WHERE is_best = 1 AND run_id = ?1"
        } else {
            "SELECT run_id FROM checkpoints WHERE is_best = 1 AND ?1 IS NULL"
        })?;
        for run in stmt.query_map([only], |r| r.get::<_, String>(0))? {
            if let Some(&i) = index.get(&run?) {
                // The best epoch's weights are also kept as `best.safetensors`, which outlives
                // the epoch checkpoints that are cleaned up.
                runs[i].checkpoint = Some("checkpoints/best.safetensors".into());
            }
        }
        let mut stmt = conn.prepare_cached(if only.is_some() {
            "SELECT run_id, epoch, path FROM samples WHERE run_id = ?1 ORDER BY id"
        } else {
            "SELECT run_id, epoch, path FROM samples WHERE ?1 IS NULL ORDER BY id"
        })?;
        let rows = stmt.query_map([only], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
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
        let rows = stmt.query_map([run_id], |r| {
            Ok(MetricRow {
                name: r.get(0)?,
                step: r.get(1)?,
                epoch: r.get(2)?,
                value: r.get(3)?,
            })
        })?;
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
    pub status: RunStatus,
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
                r.get::<_, RunStatus>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })? {
            let (id, status, trial, json, method) = row?;
            index.insert(id.clone(), rows.len());
            rows.push(TrialRow {
                id,
                status,
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
