//! Reads for the comparison views (the HTML report and `pixelx serve`): downsampled per-step
//! training loss for many runs, recorded sample epochs, checkpoints, experiments, and a cheap
//! change token for live updates.
//!
//! Everything here only reads. Each query is its own short read transaction, so a dashboard
//! polling the registry never holds a snapshot open while workers write (WAL readers do not block
//! the writer, but a long-lived reader would stop checkpoints from shrinking the WAL).

use std::collections::HashMap;

use anyhow::Result;
use rusqlite::OptionalExtension;

pub use super::summary::{BestEpoch, Curves};
use super::Registry;

/// One experiment as recorded.
#[derive(Debug, Clone)]
pub struct ExperimentRow {
    pub name: String,
    pub description: String,
    pub dataset: Option<String>,
    pub runs: i64,
}

/// One recorded checkpoint of a run.
#[derive(Debug, Clone)]
pub struct CheckpointRow {
    pub epoch: u32,
    pub path: String,
    pub size: i64,
    pub is_best: bool,
}

/// A run's training loss per step, averaged over buckets of consecutive steps so that a chart
/// gets at most a fixed number of points per run whatever the run's length.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepSeries {
    /// (mean step of the bucket, mean loss of the bucket); non-finite losses are left out.
    pub points: Vec<(f64, f64)>,
    /// The last recorded step, finite or not: where the run stopped.
    pub last_step: Option<i64>,
}

impl Registry {
    /// Experiments with their number of runs, by name.
    pub fn experiments(&self) -> Result<Vec<ExperimentRow>> {
        let mut stmt = self.conn().prepare(
            "SELECT e.name, e.description, e.dataset,
                    (SELECT COUNT(*) FROM runs r WHERE r.experiment_id = e.id)
             FROM experiments e ORDER BY e.name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ExperimentRow {
                name: r.get(0)?,
                description: r.get(1)?,
                dataset: r.get(2)?,
                runs: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Each experiment's description, by name: [`Registry::experiments`] without counting
    /// every experiment's runs.
    pub fn experiment_descriptions(&self) -> Result<HashMap<String, String>> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT name, description FROM experiments")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The experiment of the most recently added run, if any.
    pub fn latest_experiment(&self) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                // By rowid, the order runs were added in: one end of the table's b-tree, where
                // `created_at` has no index and would sort every run.
                "SELECT e.name FROM runs r JOIN experiments e ON e.id = r.experiment_id
                 ORDER BY r.rowid DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Whether `id` is a run in the registry (an exact id, not a prefix).
    pub fn run_exists(&self, id: &str) -> Result<bool> {
        Ok(self
            .conn()
            .query_row("SELECT 1 FROM runs WHERE id = ?1", [id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Whether the registry records a sample grid of `run_id` at `epoch`.
    pub fn has_samples(&self, run_id: &str, epoch: u32) -> Result<bool> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM samples WHERE run_id = ?1 AND epoch = ?2 LIMIT 1",
                rusqlite::params![run_id, epoch],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Epochs with a recorded sample grid, per run, ascending. `only` limits it to one run.
    pub fn sample_epochs(&self, only: Option<&str>) -> Result<HashMap<String, Vec<u32>>> {
        // Two statements rather than `?1 IS NULL OR run_id = ?1`, so one run's read uses
        // `samples_by_run` instead of scanning every run's samples.
        let mut stmt = self.conn().prepare(if only.is_some() {
            "SELECT DISTINCT run_id, epoch FROM samples WHERE run_id = ?1 ORDER BY run_id, epoch"
        } else {
            "SELECT DISTINCT run_id, epoch FROM samples WHERE ?1 IS NULL ORDER BY run_id, epoch"
        })?;
        let mut out: HashMap<String, Vec<u32>> = HashMap::new();
        for row in stmt.query_map([only], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))? {
            let (run, epoch) = row?;
            out.entry(run).or_default().push(epoch);
        }
        Ok(out)
    }

    /// Epochs with a recorded sample grid of each of `run_ids`, ascending: one indexed query
    /// per run (`samples_by_run`), for views that show the samples of a few runs of many.
    pub fn sample_epochs_of(&self, run_ids: &[&str]) -> Result<HashMap<String, Vec<u32>>> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT DISTINCT epoch FROM samples WHERE run_id = ?1 ORDER BY epoch")?;
        let mut out = HashMap::with_capacity(run_ids.len());
        for &id in run_ids {
            let epochs: Vec<u32> = stmt
                .query_map([id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            if !epochs.is_empty() {
                out.insert(id.to_owned(), epochs);
            }
        }
        Ok(out)
    }

    /// A run's recorded checkpoints, by epoch.
    pub fn checkpoints(&self, run_id: &str) -> Result<Vec<CheckpointRow>> {
        let mut stmt = self.conn().prepare(
            "SELECT epoch, path, size, is_best FROM checkpoints WHERE run_id = ?1 ORDER BY epoch, id",
        )?;
        let rows = stmt.query_map([run_id], |r| {
            Ok(CheckpointRow {
                epoch: r.get(0)?,
                path: r.get(1)?,
                size: r.get(2)?,
                is_best: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Per-step training loss of each of `run_ids`, at most `max_points` buckets per run.
    ///
    /// One indexed query per run (`metrics_by_run`), each its own short read, rather than one
    /// scan over every run's steps.
    pub fn train_loss_series(
        &self,
        run_ids: &[&str],
        max_points: impl Fn(&str) -> usize,
    ) -> Result<HashMap<String, StepSeries>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT step, value FROM metrics WHERE run_id = ?1 AND name = 'train_loss' ORDER BY step",
        )?;
        let mut out = HashMap::with_capacity(run_ids.len());
        for &id in run_ids {
            let raw: Vec<(i64, f64)> = stmt
                .query_map([id], |r| {
                    Ok((r.get(0)?, r.get::<_, Option<f64>>(1)?.unwrap_or(f64::NAN)))
                })?
                .collect::<rusqlite::Result<_>>()?;
            out.insert(id.to_owned(), downsample(&raw, max_points(id)));
        }
        Ok(out)
    }

    /// A token that changes whenever a run is added, changes state, or records a metric, a
    /// checkpoint or a sample: what a live view polls to know it should redraw.
    pub fn change_token(&self) -> Result<String> {
        // MAX(rowid) and MAX(id) read one end of a b-tree: constant time whatever the size (a
        // count of the runs was not: 100,000 runs took milliseconds at every request). Runs are
        // never deleted, so the newest rowid moves exactly when a run is added.
        Ok(self.conn().query_row(
            "SELECT (SELECT IFNULL(MAX(rowid), 0) FROM runs) || '.' || (SELECT IFNULL(MAX(id), 0) FROM run_events)
                 || '.' || (SELECT IFNULL(MAX(rowid), 0) FROM metrics)
                 || '.' || (SELECT IFNULL(MAX(id), 0) FROM samples)
                 || '.' || (SELECT IFNULL(MAX(id), 0) FROM checkpoints)",
            [],
            |r| r.get(0),
        )?)
    }
}

/// Means of consecutive buckets of `raw` (ordered by step), at most `max_points` of them.
/// Non-finite values (a diverging run) are left out of the means but still mark where it stopped.
fn downsample(raw: &[(i64, f64)], max_points: usize) -> StepSeries {
    let last_step = raw.last().map(|p| p.0);
    let per_bucket = raw.len().div_ceil(max_points.max(1)).max(1);
    let points = raw
        .chunks(per_bucket)
        .filter_map(|chunk| {
            let finite: Vec<&(i64, f64)> = chunk.iter().filter(|p| p.1.is_finite()).collect();
            if finite.is_empty() {
                return None;
            }
            let n = finite.len() as f64;
            let step = finite.iter().map(|p| p.0 as f64).sum::<f64>() / n;
            let value = finite.iter().map(|p| p.1).sum::<f64>() / n;
            Some((step, value))
        })
        .collect();
    StepSeries { points, last_step }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ExperimentInfo, RunConfig};

    #[test]
    fn a_view_never_creates_or_writes_the_registry_and_sees_others_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.sqlite");
        let missing = Registry::open_read_only(&path).err().unwrap();
        assert!(format!("{missing:#}").contains("no registry at"), "{missing:#}");
        assert!(!path.exists(), "a view must not create the file");

        let mut writer = Registry::open(&path).unwrap();
        let exp = writer
            .upsert_experiment(&ExperimentInfo::named("e", ""), None, Default::default())
            .unwrap();
        let view = Registry::open_read_only(&path).unwrap();
        let before = view.change_token().unwrap();
        let write = view
            .conn()
            .execute("DELETE FROM experiments", [])
            .expect_err("read-only connections refuse writes");
        assert!(
            write.to_string().contains("readonly") || write.to_string().contains("read-only"),
            "{write}"
        );
        writer
            .add_run(exp, "r1", &RunConfig::default(), dir.path(), None)
            .unwrap();
        assert_ne!(view.change_token().unwrap(), before, "a new run moves the token");
        assert!(view.run_exists("r1").unwrap() && !view.run_exists("r").unwrap());
        assert_eq!(view.latest_experiment().unwrap().as_deref(), Some("e"));
    }

    #[test]
    fn downsampling_keeps_short_series_and_buckets_long_ones() {
        let raw: Vec<(i64, f64)> = (1..=10).map(|s| (s, s as f64)).collect();
        assert_eq!(downsample(&raw, 100).points.len(), 10);
        let d = downsample(&raw, 5);
        assert_eq!(
            d.points,
            vec![(1.5, 1.5), (3.5, 3.5), (5.5, 5.5), (7.5, 7.5), (9.5, 9.5)]
        );
        assert_eq!(d.last_step, Some(10));
    }

    #[test]
    fn non_finite_losses_are_skipped_but_mark_the_end() {
        let raw = vec![(1, 1.0), (2, f64::NAN), (3, f64::INFINITY)];
        let d = downsample(&raw, 10);
        assert_eq!(d.points, vec![(1.0, 1.0)]);
        assert_eq!(d.last_step, Some(3));
    }
}
