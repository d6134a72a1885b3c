//! Counting, ranking and paging the runs of one experiment in SQL, for the views of a large
//! experiment, which show a few hundred of its runs: what these read per run is a few columns
//! of the `runs_by_experiment` index and of `run_results` (no configuration, no curves), so a
//! view of 100,000 runs costs little more than one of 10,000. The runs shown are then read in
//! full by [`Registry::summaries_of`].

use anyhow::Result;
use rusqlite::OptionalExtension;

use super::{Registry, RunStatus};

/// The rank order of runs with a result: best test bpd8, then bpd (a missing one last), then id,
/// as `report::views` ranks the runs it holds.
const RANK_ORDER: &str = "rr.best_bpd8, rr.best_bpd IS NULL, rr.best_bpd, r.id";

/// A column the runs table of a large experiment is sorted by on the server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SortColumn<'a> {
    Bpd8,
    Status,
    Id,
    ImagesPerSec,
    Wall,
    /// A run parameter (a key of its stored configuration).
    Param(&'a str),
}

impl SortColumn<'_> {
    /// The SQL value sorted by, and whether a missing value (NULL, or text for a number column)
    /// goes last whatever the direction.
    fn expr(self) -> String {
        match self {
            Self::Bpd8 => "rr.best_bpd8".into(),
            Self::Status => "r.status".into(),
            Self::Id => "r.id".into(),
            Self::ImagesPerSec => "rr.images_per_sec".into(),
            Self::Wall => "rr.wall_seconds".into(),
            // Keys are checked against the experiment's parameters by the caller; quoted as a
            // JSON path member all the same, so no key can end the string.
            Self::Param(key) => format!(
                "json_extract(r.config_json, '$.\"{}\"')",
                key.replace(['"', '\'', '\\'], "")
            ),
        }
    }
}

impl Registry {
    /// The id of experiment `name`, if the registry has it.
    fn experiment_key(&self, name: &str) -> Result<Option<i64>> {
        Ok(self
            .conn()
            .query_row("SELECT id FROM experiments WHERE name = ?1", [name], |r| r.get(0))
            .optional()?)
    }

    /// How many runs of `experiment` are in each state (an index count, no run read).
    pub fn status_counts(&self, experiment: &str) -> Result<Vec<(RunStatus, usize)>> {
        let Some(exp) = self.experiment_key(experiment)? else {
            return Ok(Vec::new());
        };
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT status, COUNT(*) FROM runs WHERE experiment_id = ?1 GROUP BY status")?;
        let rows = stmt.query_map([exp], |r| Ok((r.get::<_, RunStatus>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (status, n) = row?;
            out.push((status, n.max(0) as usize));
        }
        Ok(out)
    }

    /// Runs of `experiment` with a finite best test bpd8 (the ones a view ranks).
    pub fn ranked_count(&self, experiment: &str) -> Result<usize> {
        let n: i64 = self.conn().prepare_cached(
            "SELECT COUNT(*) FROM runs r JOIN experiments e ON e.id = r.experiment_id
             JOIN run_results rr ON rr.run_id = r.id
             WHERE e.name = ?1 AND rr.best_bpd8 IS NOT NULL",
        )?
        .query_row([experiment], |r| r.get(0))?;
        Ok(n.max(0) as usize)
    }

    /// `(rank, id)` of the ranked runs of `experiment` whose 0-based rank is below `top`, a
    /// multiple of `every`, or the last: the best runs and an evenly spaced sample of the rest,
    /// best first. The ranking is done by SQLite; only the rows asked for come back.
    pub fn ranked_ids(&self, experiment: &str, top: usize, every: usize) -> Result<Vec<(usize, String)>> {
        let sql = format!(
            "SELECT rank, id FROM (
                 SELECT r.id, ROW_NUMBER() OVER (ORDER BY {RANK_ORDER}) - 1 AS rank, COUNT(*) OVER () AS n
                 FROM runs r JOIN experiments e ON e.id = r.experiment_id
                 JOIN run_results rr ON rr.run_id = r.id
                 WHERE e.name = ?1 AND rr.best_bpd8 IS NOT NULL)
             WHERE rank < ?2 OR rank % ?3 = 0 OR rank = n - 1 ORDER BY rank"
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let rows = stmt.query_map(
            rusqlite::params![experiment, top as i64, every.max(1) as i64],
            |r| Ok((r.get::<_, i64>(0)? as usize, r.get::<_, String>(1)?)),
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Up to `limit` runs of `experiment` without a result, in the order they were added.
    pub fn unranked_ids(&self, experiment: &str, limit: usize) -> Result<Vec<String>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT r.id FROM runs r JOIN experiments e ON e.id = r.experiment_id
             LEFT JOIN run_results rr ON rr.run_id = r.id
             WHERE e.name = ?1 AND rr.best_bpd8 IS NULL ORDER BY r.created_at, r.id LIMIT ?2",
        )?;
        let rows = stmt.query_map(rusqlite::params![experiment, limit as i64], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Ids of `limit` runs of `experiment` from `offset` on, sorted by `column` (runs without a
    /// value last, whatever the direction; numbers before text), ties in rank order.
    pub fn page_ids(
        &self,
        experiment: &str,
        column: SortColumn<'_>,
        descending: bool,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<String>> {
        let value = column.expr();
        let dir = if descending { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT r.id FROM runs r JOIN experiments e ON e.id = r.experiment_id
             LEFT JOIN run_results rr ON rr.run_id = r.id
             WHERE e.name = ?1
             ORDER BY {value} IS NULL, typeof({value}) NOT IN ('integer', 'real'), {value} {dir},
                      rr.best_bpd8 IS NULL, {RANK_ORDER}
             LIMIT ?2 OFFSET ?3"
        );
        let mut stmt = self.conn().prepare(&sql)?;
        let rows = stmt.query_map(
            rusqlite::params![experiment, limit as i64, offset as i64],
            |r| r.get(0),
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
