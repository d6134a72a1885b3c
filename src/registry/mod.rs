//! The SQLite run registry: experiments, runs and their parameters, metrics, checkpoints, sample
//! grids and state changes.
//!
//! Every process (the scheduler and each worker) opens its own connection. WAL mode lets readers
//! proceed while one writer writes; writes take the lock up front (`BEGIN IMMEDIATE`) and wait up
//! to a minute for it, so concurrent workers queue instead of failing with "database is locked".

mod query;
mod record;
mod schema;
pub mod views;

pub use query::{MetricRow, RunFilter, RunSummary};
pub use record::RegistryObserver;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::config::{ExperimentInfo, RunConfig};

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Diverged,
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Diverged => "diverged",
            Self::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "diverged" => Self::Diverged,
            "interrupted" => Self::Interrupted,
            other => bail!("unknown run status `{other}`"),
        })
    }

    /// Runs in these states are picked up again when their experiment is run again.
    pub fn is_unfinished(self) -> bool {
        matches!(self, Self::Queued | Self::Interrupted | Self::Failed)
    }
}

/// The registry's row for one run.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub id: String,
    pub experiment: String,
    pub config: RunConfig,
    pub status: RunStatus,
    pub run_dir: PathBuf,
    pub device: Option<String>,
    pub host: Option<String>,
    pub pid: Option<i64>,
    pub attempts: i64,
    pub heartbeat_at: Option<String>,
    pub error: Option<String>,
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// This machine's name, to tell whether a recorded pid can be checked here.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

pub struct Registry {
    conn: Connection,
    pub path: PathBuf,
}

impl Registry {
    /// `<runs dir>/registry.sqlite`, or `$PIXELX_REGISTRY`.
    pub fn default_path(runs_dir: &Path) -> PathBuf {
        std::env::var_os("PIXELX_REGISTRY")
            .map(PathBuf::from)
            .unwrap_or_else(|| runs_dir.join("registry.sqlite"))
    }

    /// Opens (creating if needed) and migrates the registry at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let conn = Connection::open(path).with_context(|| format!("opening registry {}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(60))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let mut reg = Self {
            conn,
            path: path.to_owned(),
        };
        reg.migrate()
            .with_context(|| format!("migrating registry {}", path.display()))?;
        Ok(reg)
    }

    fn migrate(&mut self) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: usize = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > schema::MIGRATIONS.len() {
            bail!("the registry has schema version {version}, newer than this pixelx understands");
        }
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i + 1)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn schema_version(&self) -> Result<i64> {
        Ok(self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// A write transaction that holds the lock from its start.
    fn write(&mut self) -> Result<rusqlite::Transaction<'_>> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

    /// Records an experiment (updating its description and file) and returns its id.
    pub fn upsert_experiment(&mut self, info: &ExperimentInfo, file: Option<&Path>) -> Result<i64> {
        let tx = self.write()?;
        tx.execute(
            "INSERT INTO experiments (name, description, dataset, file, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(name) DO UPDATE SET description = excluded.description,
                 dataset = excluded.dataset, file = COALESCE(excluded.file, experiments.file)",
            params![info.name, info.description, info.dataset, file.map(|f| f.display().to_string()), now()],
        )?;
        let id = tx.query_row("SELECT id FROM experiments WHERE name = ?1", [&info.name], |r| {
            r.get(0)
        })?;
        tx.commit()?;
        Ok(id)
    }

    /// Adds a run as `queued` unless it exists; returns its status either way.
    pub fn add_run(
        &mut self,
        experiment_id: i64,
        id: &str,
        config: &RunConfig,
        run_dir: &Path,
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
            "INSERT INTO runs (id, experiment_id, config_json, config_hash, status, run_dir, created_at)
             VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?6)",
            params![
                id,
                experiment_id,
                json,
                crate::config::run_id("", config),
                run_dir.display().to_string(),
                at
            ],
        )?;
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
        tx.commit()?;
        Ok(RunStatus::Queued)
    }

    pub fn run(&self, id: &str) -> Result<Option<RunRow>> {
        self.conn
            .query_row(
                "SELECT r.id, e.name, r.config_json, r.status, r.run_dir, r.device, r.host, r.pid, r.attempts,
                        r.heartbeat_at, r.error
                 FROM runs r JOIN experiments e ON e.id = r.experiment_id WHERE r.id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                        r.get(10)?,
                    ))
                },
            )
            .optional()?
            .map(|(id, experiment, json, status, dir, device, host, pid, attempts, heartbeat_at, error)| {
                Ok(RunRow {
                    id,
                    experiment,
                    config: serde_json::from_str(&json).context("bad config_json in registry")?,
                    status: RunStatus::parse(&status)?,
                    run_dir: PathBuf::from(dir),
                    device,
                    host,
                    pid,
                    attempts,
                    heartbeat_at,
                    error,
                })
            })
            .transpose()
    }

    /// Takes a run for this process: only one claimant can move it from an unfinished state to
    /// `running`. Returns false when someone else holds it or it is already done.
    pub fn claim_run(&mut self, id: &str, device: &str) -> Result<bool> {
        let tx = self.write()?;
        let at = now();
        let changed = tx.execute(
            "UPDATE runs SET status = 'running', device = ?2, host = ?3, pid = ?4, attempts = attempts + 1,
                 heartbeat_at = ?5, started_at = COALESCE(started_at, ?5), finished_at = NULL, error = NULL
             WHERE id = ?1 AND status IN ('queued', 'interrupted', 'failed')",
            params![id, device, hostname(), std::process::id(), at],
        )?;
        if changed == 1 {
            tx.execute(
                "INSERT INTO run_events (run_id, status, at, detail) VALUES (?1, 'running', ?2, ?3)",
                params![id, at, format!("pid {} on {device}", std::process::id())],
            )?;
        }
        tx.commit()?;
        Ok(changed == 1)
    }

    /// Moves a run to `status`, with an optional error or note.
    pub fn set_status(&mut self, id: &str, status: RunStatus, detail: Option<&str>) -> Result<()> {
        let tx = self.write()?;
        let at = now();
        let finished = matches!(
            status,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Diverged
        );
        tx.execute(
            "UPDATE runs SET status = ?2, error = ?3, finished_at = CASE WHEN ?4 THEN ?5 ELSE finished_at END,
                 pid = CASE WHEN ?2 = 'running' THEN pid ELSE NULL END
             WHERE id = ?1",
            params![id, status.as_str(), detail.filter(|_| status != RunStatus::Completed), finished, at],
        )?;
        tx.execute(
            "INSERT INTO run_events (run_id, status, at, detail) VALUES (?1, ?2, ?3, ?4)",
            params![id, status.as_str(), at, detail],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Forgets a run's results so it trains again from scratch (`--force`).
    pub fn reset_run(&mut self, id: &str) -> Result<()> {
        let tx = self.write()?;
        for table in ["metrics", "checkpoints", "samples"] {
            tx.execute(&format!("DELETE FROM {table} WHERE run_id = ?1"), [id])?;
        }
        tx.execute(
            "UPDATE runs SET status = 'queued', error = NULL, started_at = NULL, finished_at = NULL, pid = NULL
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

    /// Drops metrics, checkpoints and samples recorded after `epochs_done` / `global_step`: what a
    /// run resumed from an earlier checkpoint will record again.
    pub fn truncate_run(&mut self, id: &str, epochs_done: u32, global_step: i64) -> Result<()> {
        let tx = self.write()?;
        tx.execute(
            "DELETE FROM metrics WHERE run_id = ?1 AND ((epoch IS NULL AND step > ?3) OR epoch > ?2)",
            params![id, epochs_done, global_step],
        )?;
        tx.execute(
            "DELETE FROM checkpoints WHERE run_id = ?1 AND epoch > ?2",
            params![id, epochs_done],
        )?;
        tx.execute(
            "DELETE FROM samples WHERE run_id = ?1 AND epoch > ?2",
            params![id, epochs_done],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Runs recorded as `running` whose worker is gone: its pid is dead on this host, or (on
    /// another host) its heartbeat is older than `stale_after`. They are marked `interrupted`.
    pub fn recover_stale(&mut self, stale_after: Duration) -> Result<Vec<String>> {
        let host = hostname();
        // (id, host, pid, heartbeat) of every run recorded as running.
        type Live = (String, Option<String>, Option<i64>, Option<String>);
        let rows: Vec<Live> = {
            let mut stmt = self
                .conn
                .prepare("SELECT id, host, pid, heartbeat_at FROM runs WHERE status = 'running'")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut stale = Vec::new();
        for (id, run_host, pid, heartbeat) in rows {
            let dead = if run_host.as_deref() == Some(host.as_str()) {
                pid.is_none_or(|p| !process_alive(p))
            } else {
                heartbeat
                    .and_then(|h| chrono::DateTime::parse_from_rfc3339(&h).ok())
                    .is_none_or(|h| {
                        (chrono::Utc::now() - h.to_utc()).to_std().unwrap_or_default() > stale_after
                    })
            };
            if dead {
                self.set_status(&id, RunStatus::Interrupted, Some("worker gone (recovered)"))?;
                stale.push(id);
            }
        }
        Ok(stale)
    }

    pub fn heartbeat(&mut self, id: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET heartbeat_at = ?2 WHERE id = ?1",
            params![id, now()],
        )?;
        Ok(())
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

/// Whether a process with this pid exists on this machine (and is not a zombie).
pub fn process_alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
