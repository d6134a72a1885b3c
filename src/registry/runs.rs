//! Adding runs and experiments, and reading one run's row.

use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::{params, OptionalExtension};

use super::lifecycle::set_status_in;
use super::{Registry, RunStatus};
use crate::config::{ExperimentInfo, RunConfig, SearchMethod};
use crate::host::{hostname, now, process_alive};
use crate::precision::Precision;

/// The registry's row for one run.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub id: String,
    pub experiment: String,
    pub config: RunConfig,
    pub status: RunStatus,
    pub device: Option<String>,
    pub host: Option<String>,
    pub pid: Option<i64>,
    /// The Slurm job training the run, if any.
    pub job: Option<String>,
    pub attempts: i64,
    pub heartbeat_at: Option<String>,
    pub error: Option<String>,
    /// The trial number within an adaptive search.
    pub trial: Option<i64>,
    /// Bytes of the run's journal already ingested.
    pub journal_offset: u64,
    /// The precision it trained in (`auto` resolved), once a worker has started it.
    pub precision: Option<Precision>,
}

impl RunRow {
    /// "pid N on host H" (or the Slurm job), for messages about who holds a run.
    pub fn holder(&self) -> String {
        match (&self.job, self.pid, &self.host) {
            (Some(job), _, _) => format!("Slurm job {job}"),
            (None, Some(pid), Some(host)) => format!("pid {pid} on host {host}"),
            (None, Some(pid), None) => format!("pid {pid}"),
            _ => "an unknown process".into(),
        }
    }

    /// Whether the process recorded as training this run is known to be gone (same host, dead
    /// pid). Runs on other hosts or in Slurm jobs are not judged here.
    pub fn process_gone(&self) -> bool {
        self.status == RunStatus::Running
            && self.job.is_none()
            && self.host.as_deref() == Some(hostname().as_str())
            && self.pid.is_none_or(|p| !process_alive(p))
    }
}

impl Registry {
    /// Records an experiment (updating its description, file and search method) and returns
    /// its id.
    pub fn upsert_experiment(
        &mut self,
        info: &ExperimentInfo,
        file: Option<&Path>,
        method: SearchMethod,
    ) -> Result<i64> {
        let tx = self.write()?;
        tx.execute(
            "INSERT INTO experiments (name, description, dataset, file, created_at, search_method)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(name) DO UPDATE SET description = excluded.description,
                 dataset = excluded.dataset, file = COALESCE(excluded.file, experiments.file),
                 search_method = excluded.search_method",
            params![
                info.name,
                info.description,
                info.dataset.map(|d| d.name()),
                file.map(|f| f.display().to_string()),
                now(),
                method.as_str()
            ],
        )?;
        let id = tx.query_row("SELECT id FROM experiments WHERE name = ?1", [&info.name], |r| {
            r.get(0)
        })?;
        tx.commit()?;
        Ok(id)
    }

    /// Adds a run as `queued` unless it exists; returns its status either way. `trial` numbers
    /// the runs an adaptive search proposes; the run keeps its experiment's search method as it
    /// is now (see [`Registry::upsert_experiment`]), whatever the file says later.
    pub fn add_run(
        &mut self,
        experiment_id: i64,
        id: &str,
        config: &RunConfig,
        run_dir: &Path,
        trial: Option<usize>,
    ) -> Result<RunStatus> {
        self.insert_run(experiment_id, id, config, run_dir, trial, None)
    }

    /// Adds trial `trial` of an adaptive search whose configuration is invalid (`error` says
    /// why) as `failed` at once, in one transaction: nothing trains it, it has no run folder,
    /// and it counts toward the study's budget. Returns its status (an existing run's, if any).
    pub fn add_invalid_trial(
        &mut self,
        experiment_id: i64,
        id: &str,
        config: &RunConfig,
        run_dir: &Path,
        trial: usize,
        error: &str,
    ) -> Result<RunStatus> {
        self.insert_run(experiment_id, id, config, run_dir, Some(trial), Some(error))
    }

    fn insert_run(
        &mut self,
        experiment_id: i64,
        id: &str,
        config: &RunConfig,
        run_dir: &Path,
        trial: Option<usize>,
        invalid: Option<&str>,
    ) -> Result<RunStatus> {
        let tx = self.write()?;
        let existing: Option<String> = tx
            .query_row("SELECT status FROM runs WHERE id = ?1", [id], |r| r.get(0))
            .optional()?;
        if let Some(status) = existing {
            tx.commit()?;
            return RunStatus::parse(&status);
        }
        let json = serde_json::to_string(config)?;
        let at = now();
        tx.execute(
            "INSERT INTO runs (id, experiment_id, config_json, config_hash, status, run_dir, created_at, trial, method)
             VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?6, ?7,
                     (SELECT search_method FROM experiments WHERE id = ?2))",
            params![
                id,
                experiment_id,
                json,
                crate::config::run_id("", config),
                run_dir.display().to_string(),
                at,
                trial.map(|t| t as i64)
            ],
        )?;
        // An empty results row from the start, so a report of queued runs finds one per run.
        super::results::refresh_results(&tx, id)?;
        let value = serde_json::to_value(config)?;
        for (key, v) in value.as_object().into_iter().flatten() {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            tx.execute(
                "INSERT INTO params (run_id, key, value_text, value_num) VALUES (?1, ?2, ?3, ?4)",
                params![id, key, text, v.as_f64()],
            )?;
        }
        tx.execute(
            "INSERT INTO run_events (run_id, status, at) VALUES (?1, 'queued', ?2)",
            params![id, at],
        )?;
        let status = match invalid {
            Some(error) => {
                set_status_in(&tx, id, RunStatus::Failed, Some(error), &at)?;
                RunStatus::Failed
            }
            None => RunStatus::Queued,
        };
        tx.commit()?;
        Ok(status)
    }

    pub fn run(&self, id: &str) -> Result<Option<RunRow>> {
        self.conn
            .query_row(
                "SELECT r.id, e.name, r.config_json, r.status, r.device, r.host, r.pid, r.job_id,
                        r.attempts, r.heartbeat_at, r.error, r.trial, r.journal_offset, r.precision
                 FROM runs r JOIN experiments e ON e.id = r.experiment_id WHERE r.id = ?1",
                [id],
                |r| {
                    Ok((
                        (
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                        ),
                        (r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?),
                        (r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?, r.get::<_, i64>(12)?),
                        r.get::<_, Option<String>>(13)?,
                    ))
                },
            )
            .optional()?
            .map(
                |(
                    (id, experiment, json, status),
                    (device, host, pid, job),
                    (attempts, heartbeat_at, error, trial, offset),
                    precision,
                )| {
                    Ok(RunRow {
                        id,
                        experiment,
                        config: serde_json::from_str(&json).context("bad config_json in registry")?,
                        status: RunStatus::parse(&status)?,
                        device,
                        host,
                        pid,
                        job,
                        attempts,
                        heartbeat_at,
                        error,
                        trial,
                        journal_offset: offset.max(0) as u64,
                        precision: precision.as_deref().and_then(Precision::parse),
                    })
                },
            )
            .transpose()
    }
}
