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
mod lifecycle;
mod query;
mod ranking;
mod results;
mod runs;
/// Public so that tests can apply one migration to a registry they built by hand.
pub mod schema;
mod speeds;
mod status;
mod summary;
pub mod views;

pub use errors::explain;
pub use ingest::Ingested;
pub use query::TrialRow;
pub use ranking::SortColumn;
pub use runs::RunRow;
pub use speeds::{EpochSpeed, SpeedRecord};
pub use status::RunStatus;
pub use summary::{run_relative, BestEpoch, Curves, MetricRow, Progress, RunFilter, RunSummary};

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Result};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};
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
                results::backfill_results(&tx)?;
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
    pub(super) fn write(&mut self) -> Result<rusqlite::Transaction<'_>> {
        let path = self.path.clone();
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| explain(e.into(), &path))
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Runs the reads of `f` in one read transaction, so that they see one state of the
    /// registry: counts, ranks and the rows read stay consistent while runs are being ingested.
    /// Not for writes, nor for code that opens a transaction itself.
    pub fn read_snapshot<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let tx = self.conn.unchecked_transaction()?;
        let out = f()?;
        tx.finish()?;
        Ok(out)
    }
}
