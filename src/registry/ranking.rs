//! Counting, ranking and paging the runs of one experiment in SQL, for the views of a large
//! experiment, which show a few hundred of its runs: what these read per run is a few columns
//! of the `runs_by_experiment` index and of `run_results` (no configuration, no curves), so a
//! view of 100,000 runs costs little more than one of 10,000. The runs shown are then read in
//! full by [`Registry::summaries_of`].

use anyhow::Result;

use super::{Registry, RunStatus};

/// The rank order of runs with a result: best test bpd8, then bpd (a missing one last), then id,
/// as `report::views` ranks the runs it holds.
/// `run_results_by_rank` holds each experiment's runs in this order, so SQLite reads it from the
/// index, without a sort.
const RANK_ORDER: &str = "rr.best_bpd8, rr.best_bpd IS NULL, rr.best_bpd, rr.run_id";

/// The experiment named `?1`.
const EXPERIMENT: &str = "(SELECT id FROM experiments WHERE name = ?1)";

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
    /// How many runs of `experiment` are in each state (an index count, no run read).
    pub fn status_counts(&self, experiment: &str) -> Result<Vec<(RunStatus, usize)>> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT status, COUNT(*) FROM runs WHERE experiment_id = {EXPERIMENT} GROUP BY status"
        ))?;
        let rows = stmt.query_map([experiment], |r| {
            Ok((r.get::<_, RunStatus>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (status, n) = row?;
            out.push((status, n.max(0) as usize));
        }
        Ok(out)
    }

    /// Runs of `experiment` that running its file again does not train (completed, pruned,
    /// diverged): what the scheduler leaves out when it packs slots for the rest.
    pub fn finished_count(&self, experiment: &str) -> Result<usize> {
        Ok(self
            .status_counts(experiment)?
            .into_iter()
            .filter(|(s, _)| !s.is_unfinished() && *s != RunStatus::Running)
            .map(|(_, n)| n)
            .sum())
    }

    /// Runs of `experiment` with a finite best test bpd8 (the ones a view ranks).
    pub fn ranked_count(&self, experiment: &str) -> Result<usize> {
        let n: i64 = self
            .conn()
            .prepare_cached(&format!(
                "SELECT COUNT(*) FROM run_results WHERE experiment_id = {EXPERIMENT}
                 AND best_bpd8 IS NOT NULL"
            ))?
            .query_row([experiment], |r| r.get(0))?;
        Ok(n.max(0) as usize)
    }

    /// `(rank, id)` of the ranked runs of `experiment` whose 0-based rank is below `top`, a
    /// multiple of `every`, or the last of `ranked`: the best runs and an evenly spaced sample
    /// of the rest, best first. SQLite numbers the runs along `run_results_by_rank`; only the
    /// rows asked for come back.
    pub fn ranked_ids(
        &self,
        experiment: &str,
        ranked: usize,
        top: usize,
        every: usize,
    ) -> Result<Vec<(usize, String)>> {
        let sql = format!(
            "SELECT rank, run_id FROM (
                 SELECT rr.run_id, ROW_NUMBER() OVER (ORDER BY {RANK_ORDER}) - 1 AS rank
                 FROM run_results rr
                 WHERE rr.experiment_id = {EXPERIMENT} AND rr.best_bpd8 IS NOT NULL)
             WHERE rank < ?2 OR rank % ?3 = 0 OR rank = ?4 - 1 ORDER BY rank"
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let args = rusqlite::params![experiment, top as i64, every.max(1) as i64, ranked as i64];
        let rows = stmt.query_map(args, |r| {
            Ok((r.get::<_, i64>(0)? as usize, r.get::<_, String>(1)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Up to `limit` runs of `experiment` without a result, from `offset` on, in the order they
    /// were added (the order every listing of the runs has without a sort).
    fn unranked(&self, experiment: &str, offset: usize, limit: usize) -> Result<Vec<String>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT r.id FROM runs r LEFT JOIN run_results rr ON rr.run_id = r.id
             WHERE r.experiment_id = {EXPERIMENT} AND rr.best_bpd8 IS NULL
             ORDER BY r.created_at, r.id LIMIT ?2 OFFSET ?3"
        ))?;
        let args = rusqlite::params![experiment, limit as i64, offset as i64];
        let rows = stmt.query_map(args, |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Up to `limit` runs of `experiment` without a result, in the order they were added.
    pub fn unranked_ids(&self, experiment: &str, limit: usize) -> Result<Vec<String>> {
        self.unranked(experiment, 0, limit)
    }

    /// The `limit` best runs of `experiment` by best bpd8, then runs without a result in the
    /// order they were added: what `report --sort bpd8` lists first, read along the rank
    /// indexes. With the run count it was cut from.
    pub fn best_ids(&self, experiment: &str, limit: usize) -> Result<(Vec<String>, usize)> {
        let total = self.status_counts(experiment)?.iter().map(|(_, n)| n).sum();
        let ranked = self.ranked_count(experiment)?;
        Ok((self.page_by_rank(experiment, ranked, 0, limit)?, total))
    }

    /// `(id, journal offset)` of every run (of `experiment`, if given): what tells whether a
    /// run's journal holds results not ingested yet, without reading the runs.
    pub fn journal_offsets(&self, experiment: Option<&str>) -> Result<Vec<(String, u64)>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT r.id, r.journal_offset FROM runs r JOIN experiments e ON e.id = r.experiment_id
             WHERE ?1 IS NULL OR e.name = ?1 ORDER BY r.created_at, r.id",
        )?;
        let rows = stmt.query_map([experiment], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// [`Registry::page_ids`] by best bpd8, ascending: the ranked runs along the rank index
    /// (no sort), then the others in the order they were added.
    fn page_by_rank(
        &self,
        experiment: &str,
        ranked: usize,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<String>> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT rr.run_id FROM run_results rr
             WHERE rr.experiment_id = {EXPERIMENT} AND rr.best_bpd8 IS NOT NULL
             ORDER BY {RANK_ORDER} LIMIT ?2 OFFSET ?3"
        ))?;
        let args = rusqlite::params![experiment, limit as i64, offset as i64];
        let mut ids: Vec<String> = stmt
            .query_map(args, |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let rest = limit - ids.len();
        ids.extend(self.unranked(experiment, offset.saturating_sub(ranked), rest)?);
        Ok(ids)
    }

    /// Ids of `limit` runs of `experiment` from `offset` on, sorted by `column` (runs without a
    /// value last, whatever the direction; numbers before text), ties in rank order.
    pub fn page_ids(
        &self,
        experiment: &str,
        (column, descending): (SortColumn<'_>, bool),
        ranked: usize,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<String>> {
        if column == SortColumn::Bpd8 && !descending {
            return self.page_by_rank(experiment, ranked, offset, limit);
        }
        let value = column.expr();
        let dir = if descending { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT r.id FROM runs r LEFT JOIN run_results rr ON rr.run_id = r.id
             WHERE r.experiment_id = {EXPERIMENT}
             ORDER BY {value} IS NULL, typeof({value}) NOT IN ('integer', 'real'), {value} {dir},
                      rr.best_bpd8 IS NULL, {RANK_ORDER}, r.id
             LIMIT ?2 OFFSET ?3"
        );
        let mut stmt = self.conn().prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params![experiment, limit as i64, offset as i64], |r| {
            r.get(0)
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ExperimentInfo, RunConfig};

    /// Runs a..e of experiment `e` with these best (bpd8, bpd) and learning rates; `c` has no
    /// result, `a` and `d` tie on bpd8.
    fn registry(dir: &std::path::Path) -> Registry {
        let mut reg = Registry::open(&dir.join("registry.sqlite")).unwrap();
        let exp = reg
            .upsert_experiment(&ExperimentInfo::named("e", ""), None, Default::default())
            .unwrap();
        let runs = [
            ("a", Some((1.0, 0.1)), 1e-3),
            ("b", Some((2.0, 0.2)), 1e-2),
            ("c", None, 1e-1),
            ("d", Some((1.0, 0.3)), 1e-2),
            ("e", Some((3.0, 0.4)), 1e-4),
        ];
        for (id, best, lr) in runs {
            let config = RunConfig {
                learning_rate: lr,
                ..RunConfig::default()
            };
            reg.add_run(exp, id, &config, dir, None).unwrap();
            if let Some((bpd8, bpd)) = best {
                reg.conn()
                    .execute(
                        "UPDATE run_results SET best_epoch = 1, best_bpd8 = ?1, best_bpd = ?2 WHERE run_id = ?3",
                        rusqlite::params![bpd8, bpd, id],
                    )
                    .unwrap();
            }
        }
        reg
    }

    #[test]
    fn runs_are_counted_ranked_and_paged_in_sql_as_the_views_order_them() {
        let dir = tempfile::tempdir().unwrap();
        let reg = registry(dir.path());
        assert_eq!(reg.status_counts("e").unwrap(), vec![(RunStatus::Queued, 5)]);
        assert!(reg.status_counts("nope").unwrap().is_empty());
        assert_eq!(reg.ranked_count("e").unwrap(), 4);
        let ranked = |top, every| reg.ranked_ids("e", 4, top, every).unwrap();
        let pairs = |v: &[(usize, &str)]| -> Vec<(usize, String)> {
            v.iter().map(|(k, id)| (*k, id.to_string())).collect()
        };
        // The best two, every 100th (rank 0) and the last.
        assert_eq!(ranked(2, 100), pairs(&[(0, "a"), (1, "d"), (3, "e")]));
        assert_eq!(ranked(0, 2), pairs(&[(0, "a"), (2, "b"), (3, "e")]));
        let page = |column, descending, offset, limit| {
            reg.page_ids("e", (column, descending), 4, offset, limit).unwrap()
        };
        assert_eq!(page(SortColumn::Bpd8, false, 0, 10), ["a", "d", "b", "e", "c"]);
        assert_eq!(
            page(SortColumn::Bpd8, false, 3, 2),
            ["e", "c"],
            "the unranked run fills the page"
        );
        assert_eq!(page(SortColumn::Bpd8, false, 4, 2), ["c"]);
        // Descending: the values reversed, ties still by rank, no value still last.
        assert_eq!(page(SortColumn::Bpd8, true, 0, 10), ["e", "b", "a", "d", "c"]);
        let by_lr = page(SortColumn::Param("learning_rate"), true, 0, 10);
        assert_eq!(
            by_lr,
            ["c", "d", "b", "a", "e"],
            "1e-1, then the two 1e-2 by rank"
        );
        assert_eq!(page(SortColumn::Id, true, 0, 2), ["e", "d"]);
        let (best, total) = reg.best_ids("e", 3).unwrap();
        assert_eq!((best, total), (vec!["a".into(), "d".into(), "b".into()], 5));
        let (all, _) = reg.best_ids("e", 10).unwrap();
        assert_eq!(all, ["a", "d", "b", "e", "c"]);
    }

    /// Runs without a result come after the ranked ones in the order they were added, in every
    /// listing of them; with no results row at all, ties end on the run id.
    #[test]
    fn unranked_runs_are_listed_in_the_order_added_and_ties_end_on_the_id() {
        let dir = tempfile::tempdir().unwrap();
        let mut reg = registry(dir.path());
        let exp: i64 = reg
            .conn()
            .query_row("SELECT id FROM experiments WHERE name = 'e'", [], |r| r.get(0))
            .unwrap();
        for (id, seed) in [("g", 7), ("f", 8)] {
            let config = RunConfig {
                seed,
                ..RunConfig::default()
            };
            reg.add_run(exp, id, &config, dir.path(), None).unwrap();
        }
        // g was added first, before c; f and c in the same instant.
        reg.conn()
            .execute(
                "UPDATE runs SET created_at = '2000-01-01T00:00:00Z' WHERE id = 'g'",
                [],
            )
            .unwrap();
        reg.conn()
            .execute(
                "UPDATE runs SET created_at = (SELECT created_at FROM runs WHERE id = 'c') WHERE id = 'f'",
                [],
            )
            .unwrap();
        assert_eq!(reg.unranked_ids("e", 10).unwrap(), ["g", "c", "f"]);
        assert_eq!(
            reg.page_ids("e", (SortColumn::Bpd8, false), 4, 3, 10).unwrap(),
            ["e", "g", "c", "f"]
        );
        assert_eq!(
            reg.best_ids("e", 10).unwrap().0,
            ["a", "d", "b", "e", "g", "c", "f"]
        );
        // Runs without a results row (written by another tool): no rank, ties on the id.
        reg.conn()
            .execute("DELETE FROM run_results WHERE run_id IN ('c', 'f', 'g')", [])
            .unwrap();
        assert_eq!(
            reg.page_ids("e", (SortColumn::Status, false), 4, 0, 10).unwrap(),
            ["a", "d", "b", "e", "c", "f", "g"]
        );
    }
}
