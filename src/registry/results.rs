//! `run_results`: one row per run with its best epoch, speed, wall time and per-epoch curves,
//! recomputed from the run's epoch rows whenever ingestion changes them, so that reports read one
//! small row per run instead of its metric rows.

use std::collections::HashMap;

use anyhow::Result;
use serde::Serialize;

use super::summary::{BestEpoch, Curves};

/// What `run_results` keeps of a run: its results over the epochs it finished.
#[derive(Debug, Default)]
pub(super) struct RunResults {
    pub best: Option<BestEpoch>,
    pub images_per_sec: Option<f64>,
    pub wall_seconds: Option<f64>,
    pub curves: Curves,
}

/// Curves as stored in `run_results.curves` (JSON has no NaN: a missing value is `null`).
#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub(super) struct StoredCurves {
    epochs: Vec<u32>,
    test_bpd8: Vec<Option<f64>>,
    test_bpd: Vec<Option<f64>>,
    train_loss: Vec<Option<f64>>,
}

impl StoredCurves {
    pub(super) fn from_curves(c: &Curves) -> Self {
        let opt = |v: &[f64]| v.iter().map(|x| x.is_finite().then_some(*x)).collect();
        Self {
            epochs: c.epochs.clone(),
            test_bpd8: opt(&c.test_bpd8),
            test_bpd: opt(&c.test_bpd),
            train_loss: opt(&c.train_loss),
        }
    }

    pub(super) fn into_curves(self) -> Curves {
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
pub(super) fn results_from_metrics(conn: &rusqlite::Connection, run_id: &str) -> Result<RunResults> {
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
             (run_id, best_epoch, best_bpd8, best_bpd, best_nll, images_per_sec, wall_seconds, curves,
              experiment_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, (SELECT experiment_id FROM runs WHERE id = ?1))",
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
    use crate::config::{ExperimentInfo, RunConfig};
    use crate::journal::{append, CheckpointRecord, EpochRecord, Event};
    use crate::metrics::EvalMetrics;
    use crate::registry::run_relative;
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
