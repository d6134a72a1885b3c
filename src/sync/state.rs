//! What has been sent to one tracking server, kept in the registry's `mlflow_sync` table.
//!
//! Every row is written right after the server confirmed what it records, one statement at a
//! time: a sync stopped anywhere (a dead server, Ctrl-C) leaves the table true, and the next sync
//! sends the rest. Nothing secret is stored: the server is named by its URI without credentials.

use std::collections::HashMap;

use anyhow::{Context, Result};
use rusqlite::params;

use crate::registry::Registry;

/// The key of an experiment's rows: they belong to no run.
pub const NO_RUN: &str = "";

pub struct SentState<'a> {
    registry: &'a Registry,
    server: String,
    /// (run id, item) → value, read once and kept in step with the table.
    rows: HashMap<(String, String), String>,
    /// A dry run reads the table but never writes it.
    read_only: bool,
}

impl<'a> SentState<'a> {
    pub fn load(registry: &'a Registry, server: &str, read_only: bool) -> Result<Self> {
        let mut stmt = registry
            .conn()
            .prepare("SELECT run_id, item, value FROM mlflow_sync WHERE server = ?1")?;
        let rows = stmt
            .query_map([server], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?
            .collect::<rusqlite::Result<HashMap<_, _>>>()
            .context("reading what was sent to MLflow from the registry")?;
        Ok(Self {
            registry,
            server: server.to_owned(),
            rows,
            read_only,
        })
    }

    pub fn get(&self, run_id: &str, item: &str) -> Option<&str> {
        self.rows
            .get(&(run_id.to_owned(), item.to_owned()))
            .map(String::as_str)
    }

    /// Records that the server now has `value` for `item`.
    pub fn set(&mut self, run_id: &str, item: &str, value: &str) -> Result<()> {
        if !self.read_only {
            self.registry
                .conn()
                .execute(
                    "INSERT INTO mlflow_sync (server, run_id, item, value, sent_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (server, run_id, item) DO UPDATE SET value = excluded.value, sent_at = excluded.sent_at",
                    params![self.server, run_id, item, value, crate::host::now()],
                )
                .with_context(|| format!("recording in {} what was sent to MLflow", self.registry.path.display()))?;
        }
        self.rows
            .insert((run_id.to_owned(), item.to_owned()), value.to_owned());
        Ok(())
    }

    /// Forgets everything sent for `runs`: the server no longer has it (its store was replaced).
    pub fn forget_runs(&mut self, runs: &[String]) -> Result<()> {
        for run in runs {
            if !self.read_only {
                self.registry.conn().execute(
                    "DELETE FROM mlflow_sync WHERE server = ?1 AND run_id = ?2",
                    params![self.server, run],
                )?;
            }
            self.rows.retain(|(r, _), _| r != run);
        }
        Ok(())
    }
}
