//! The SQLite run registry: experiments, runs and their parameters, metrics, checkpoints, sample
//! grids and state changes.
//!
//! The registry depends on nothing above it: it stores plain values and ingests the journals
//! workers write (`crate::journal`); it never runs training. Writers are coordinators
//! (`pixelx run`, `pixelx train`, `pixelx resume`); WAL mode lets readers (`report`, `ls`, the
//! dashboard) proceed while one writer writes; writes take the lock up front (`BEGIN IMMEDIATE`)
//! and wait up to a minute for it. Read-only commands open the file read-only and never create
//! or migrate anything.

mod errors;
mod ingest;
mod query;
/// Public so that tests can apply one migration to a registry they built by hand.
pub mod schema;
mod speeds;
pub mod views;

pub use errors::explain;
pub use ingest::Ingested;
pub use query::{run_relative, BestEpoch, Curves, MetricRow, Progress, RunFilter, RunSummary, TrialRow};
pub use speeds::{EpochSpeed, SpeedRecord};

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::config::{ExperimentInfo, RunConfig, SearchMethod};
use crate::host::{hostname, now, process_alive};

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum RunStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Diverged,
    Interrupted,
    /// Stopped early by a pruner; keeps its checkpoints (`pixelx resume --force` continues it).
    Pruned,
}

impl RunStatus {
    pub const ALL: [RunStatus; 7] = [
        Self::Queued,
        Self::Running,
        Self::Completed,
        Self::Failed,
        Self::Diverged,
        Self::Interrupted,
        Self::Pruned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Diverged => "diverged",
            Self::Interrupted => "interrupted",
            Self::Pruned => "pruned",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match Self::ALL.into_iter().find(|x| x.as_str() == s) {
            Some(x) => Ok(x),
            None => bail!("unknown run status `{s}`"),
        }
    }

    /// Runs in these states are picked up again when their experiment is run again.
    pub fn is_unfinished(self) -> bool {
        matches!(self, Self::Queued | Self::Interrupted | Self::Failed)
    }

    /// States a worker leaves a run in for good (`finished_at` is set).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Diverged | Self::Pruned
        )
    }
}

impl From<crate::journal::FinalStatus> for RunStatus {
    fn from(s: crate::journal::FinalStatus) -> Self {
        use crate::journal::FinalStatus as F;
        match s {
            F::Completed => Self::Completed,
            F::Interrupted => Self::Interrupted,
            F::Failed => Self::Failed,
            F::Diverged => Self::Diverged,
            F::Pruned => Self::Pruned,
        }
    }
}

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

pub struct Registry {
    conn: Connection,
    pub path: PathBuf,
}

/// Refuses a registry path that is a folder, with the fix: SQLite would only say it "cannot
/// open" it, and a read-only command would say there is no registry.
pub fn check_not_folder(path: &Path) -> Result<()> {
    if path.is_dir() {
        bail!(
            "the registry {} is a directory, not a registry file (--registry or PIXELX_REGISTRY \
             names the SQLite file itself, e.g. {})",
            path.display(),
            Registry::default_path(path).display()
        );
    }
    Ok(())
}

/// A registry written by a newer pixelx: its tables may mean something this version does not
/// know, so it is neither read nor written.
fn newer_schema(path: &Path, version: i64) -> anyhow::Error {
    anyhow::anyhow!(
        "the registry {} has schema version {version}, newer than this pixelx understands ({}); \
         upgrade pixelx",
        path.display(),
        schema::MIGRATIONS.len()
    )
}

impl Registry {
    /// `<runs dir>/registry.sqlite`: the default when `--registry` (or `PIXELX_REGISTRY`) is not
    /// given.
    pub fn default_path(runs_dir: &Path) -> PathBuf {
        runs_dir.join("registry.sqlite")
    }

    /// Opens the registry at `path` for writing, creating and migrating it as needed.
    pub fn open(path: &Path) -> Result<Self> {
        check_not_folder(path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::fsio::create_dir_all(dir)?;
        }
        let conn = Connection::open(path).map_err(|e| explain(e.into(), path))?;
        let mut reg = Self::configure(conn, path)?;
        reg.migrate().map_err(|e| explain(e, path))?;
        Ok(reg)
    }

    /// Opens an existing registry read-only: nothing is created, migrated or locked for
    /// writing. A registry of an older schema is migrated once (with a write) if it can be.
    pub fn open_read_only(path: &Path) -> Result<Self> {
        check_not_folder(path)?;
        if !path.is_file() {
            bail!(
                "no registry at {} (run an experiment with `pixelx run FILE`, or point --runs-dir \
                 or --registry at an existing one)",
                path.display()
            );
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| explain(e.into(), path))?;
        let reg = Self::configure_read_only(conn, path)?;
        let version = reg.schema_version().map_err(|e| explain(e, path))?;
        if version == 0 {
            bail!("{} is not a pixelx registry (it has no schema)", path.display());
        }
        if version > schema::MIGRATIONS.len() as i64 {
            return Err(newer_schema(path, version));
        }
        if version < schema::MIGRATIONS.len() as i64 {
            drop(reg);
            Self::open(path)?;
            let conn = Connection::open_with_flags(path, flags).map_err(|e| explain(e.into(), path))?;
            return Self::configure_read_only(conn, path);
        }
        Ok(reg)
    }

    /// Opens an existing registry read-only as it is: no migration even of an older schema, so
    /// nothing at all is written. For readers of what every schema version has (run ids, for
    /// shell completion).
    pub fn open_read_only_as_is(path: &Path) -> Result<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| explain(e.into(), path))?;
        Self::configure_read_only(conn, path)
    }

    fn configure(conn: Connection, path: &Path) -> Result<Self> {
        let setup = || -> rusqlite::Result<()> {
            conn.busy_timeout(Duration::from_secs(60))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "foreign_keys", "ON")?;
            conn.pragma_update(None, "synchronous", "NORMAL")
        };
        setup().map_err(|e| explain(e.into(), path))?;
        Ok(Self {
            conn,
            path: path.to_owned(),
        })
    }

    fn configure_read_only(conn: Connection, path: &Path) -> Result<Self> {
        // Readers never wait for a write to finish (WAL); only, briefly, for a checkpoint.
        let setup = || -> rusqlite::Result<()> {
            conn.busy_timeout(Duration::from_secs(5))?;
            conn.pragma_update(None, "query_only", "ON")
        };
        setup().map_err(|e| explain(e.into(), path))?;
        Ok(Self {
            conn,
            path: path.to_owned(),
        })
    }

    /// Applies the migrations this file lacks. The version is read first without a lock, so
    /// opening an up-to-date registry takes no write lock.
    fn migrate(&mut self) -> Result<()> {
        let target = schema::MIGRATIONS.len();
        if self.schema_version()? as usize == target {
            return Ok(());
        }
        // Foreign keys off while tables are rebuilt (a pragma that only works outside a
        // transaction), checked again before the migration commits.
        self.conn.pragma_update(None, "foreign_keys", "OFF")?;
        let result = (|| -> Result<()> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let version: usize = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if version > target {
                return Err(newer_schema(&self.path, version as i64));
            }
            for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version) {
                tx.execute_batch(sql)?;
                tx.pragma_update(None, "user_version", i + 1)?;
            }
            if version <= schema::results_migration() {
                query::backfill_results(&tx)?;
            }
            let broken: Option<String> = tx
                .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
                .optional()?;
            if let Some(table) = broken {
                bail!("migration left rows in {table} without their run");
            }
            tx.commit()?;
            Ok(())
        })();
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        result
    }

    pub fn schema_version(&self) -> Result<i64> {
        Ok(self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// A write transaction that holds the lock from its start.
    fn write(&mut self) -> Result<rusqlite::Transaction<'_>> {
        let path = self.path.clone();
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| explain(e.into(), &path))
    }

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
        query::refresh_results(&tx, id)?;
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
                        r.attempts, r.heartbeat_at, r.error, r.trial, r.journal_offset
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
                    ))
                },
            )
            .optional()?
            .map(
                |(
                    (id, experiment, json, status),
                    (device, host, pid, job),
                    (attempts, heartbeat_at, error, trial, offset),
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
                    })
                },
            )
            .transpose()
    }

    /// Takes a run for a worker this process starts: only one claimant can move it from an
    /// unfinished state to `running`. Returns false when someone else holds it or it is done.
    /// `pid` is the process that trains it (None until known, e.g. a Slurm job's).
    pub fn claim_run(&mut self, id: &str, device: &str, pid: Option<u32>) -> Result<bool> {
        let tx = self.write()?;
        let changed = tx.execute(
            "UPDATE runs SET status = 'running', device = ?2, host = ?3, pid = ?4, job_id = NULL,
                 attempts = attempts + 1, heartbeat_at = ?5, finished_at = NULL, error = NULL
             WHERE id = ?1 AND status IN ('queued', 'interrupted', 'failed')",
            params![id, device, hostname(), pid.unwrap_or(std::process::id()), now()],
        )?;
        tx.commit()?;
        Ok(changed == 1)
    }

    /// Records the process or Slurm job that trains a claimed run, with a `launched` event.
    pub fn set_worker(&mut self, id: &str, pid: Option<u32>, job: Option<&str>, place: &str) -> Result<()> {
        let tx = self.write()?;
        tx.execute(
            "UPDATE runs SET pid = ?2, job_id = ?3 WHERE id = ?1",
            params![id, pid, job],
        )?;
        let who = match (job, pid) {
            (Some(job), _) => format!("Slurm job {job}"),
            (None, Some(pid)) => format!("worker pid {pid} on {place}"),
            (None, None) => place.to_owned(),
        };
        tx.execute(
            "INSERT INTO run_events (run_id, status, at, detail) VALUES (?1, 'launched', ?2, ?3)",
            params![id, now(), who],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Moves a run to `status`, with an optional error or note.
    pub fn set_status(&mut self, id: &str, status: RunStatus, detail: Option<&str>) -> Result<()> {
        let tx = self.write()?;
        set_status_in(&tx, id, status, detail, &now())?;
        tx.commit()?;
        Ok(())
    }

    /// Records an event of a run that is not a change of status (e.g. a pruner's decision).
    pub fn add_event(&mut self, id: &str, kind: &str, detail: &str) -> Result<()> {
        let tx = self.write()?;
        tx.execute(
            "INSERT INTO run_events (run_id, status, at, detail) VALUES (?1, ?2, ?3, ?4)",
            params![id, kind, now(), detail],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Marks an imported run complete, with its weights as its best checkpoint.
    pub fn record_import(&mut self, id: &str, checkpoint: &str, source: &str) -> Result<()> {
        let tx = self.write()?;
        let at = now();
        tx.execute(
            "INSERT INTO checkpoints (run_id, path, size, sha256, epoch, is_best, created_at)
             VALUES (?1, ?2, 0, '', 0, 1, ?3)",
            params![id, checkpoint, at],
        )?;
        tx.execute(
            "UPDATE runs SET status = 'completed', started_at = ?2, finished_at = ?2 WHERE id = ?1",
            params![id, at],
        )?;
        tx.execute(
            "INSERT INTO run_events (run_id, status, at, detail) VALUES (?1, 'completed', ?2, ?3)",
            params![id, at, format!("imported from {source}")],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Forgets a run's results so it trains again from scratch (`--force`).
    pub fn reset_run(&mut self, id: &str) -> Result<()> {
        let tx = self.write()?;
        for table in ["metrics", "checkpoints", "samples", "run_results"] {
            tx.execute(&format!("DELETE FROM {table} WHERE run_id = ?1"), [id])?;
        }
        query::refresh_results(&tx, id)?;
        tx.execute(
            "UPDATE runs SET status = 'queued', error = NULL, started_at = NULL, finished_at = NULL, pid = NULL,
                 job_id = NULL, journal_offset = 0, epoch = NULL, step_in_epoch = NULL, images_per_sec = NULL
             WHERE id = ?1",
            [id],
        )?;
        tx.execute(
            "INSERT INTO run_events (run_id, status, at, detail) VALUES (?1, 'queued', ?2, 'forced rerun')",
            params![id, now()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Runs recorded as `running` on this host whose process is gone, marked `interrupted` so
    /// they continue. Runs held by a live process, on another host, or in a Slurm job are left
    /// to whoever holds them. Returns the recovered ids.
    pub fn recover_stale(&mut self, experiment: Option<&str>) -> Result<Vec<String>> {
        let ids: Vec<String> = {
            let mut stmt = self.conn.prepare(
                "SELECT r.id FROM runs r JOIN experiments e ON e.id = r.experiment_id
                 WHERE r.status = 'running' AND (?1 IS NULL OR e.name = ?1)",
            )?;
            let rows = stmt.query_map([experiment], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut stale = Vec::new();
        for id in ids {
            if self.run(&id)?.is_some_and(|r| r.process_gone()) {
                self.set_status(&id, RunStatus::Interrupted, Some("worker gone (recovered)"))?;
                stale.push(id);
            }
        }
        Ok(stale)
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

/// Sets a run's status inside a transaction, with its event.
fn set_status_in(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    status: RunStatus,
    detail: Option<&str>,
    at: &str,
) -> Result<()> {
    tx.execute(
        "UPDATE runs SET status = ?2, error = ?3, finished_at = CASE WHEN ?4 THEN ?5 ELSE finished_at END,
             pid = CASE WHEN ?2 = 'running' THEN pid ELSE NULL END,
             epoch = CASE WHEN ?2 = 'running' THEN epoch ELSE NULL END
         WHERE id = ?1",
        params![
            id,
            status.as_str(),
            detail.filter(|_| status != RunStatus::Completed),
            status.is_final(),
            at
        ],
    )?;
    tx.execute(
        "INSERT INTO run_events (run_id, status, at, detail) VALUES (?1, ?2, ?3, ?4)",
        params![id, status.as_str(), at, detail],
    )?;
    Ok(())
}
