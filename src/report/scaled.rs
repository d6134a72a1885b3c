//! The view of one experiment read from the registry, at any size. Up to
//! [`FULL_DETAIL_RUNS`] runs every run is read and drawn ([`super::views::build_owned`]). Past
//! it, SQLite counts, ranks and pages the runs, and only the runs shown are read in full: the
//! top runs, [`SAMPLE_RUNS`] runs evenly spaced by rank (the best and the worst included) that
//! the envelope, the parameter charts and the importance table stand on, and the runs table's
//! rows. So a view of 100,000 runs reads as many runs as one of 10,000; what still grows with
//! the experiment is SQLite's counting and sorting of a few columns.

use std::collections::HashMap;

use anyhow::Result;

use super::params::swept_params;
use super::table::{TablePage, PAGE_ROWS};
use super::views::{self, AtScale, ExperimentView, FULL_DETAIL_RUNS, SAMPLED_OTHERS, TOP_N};
use crate::registry::{Registry, RunFilter, RunSummary, SortColumn};

/// Ranked runs of a large experiment that stand for all of them (the envelope of the epoch
/// chart, the importance table), evenly spaced by rank.
pub const SAMPLE_RUNS: usize = 1000;

/// Which rows the runs table of an experiment shows.
#[derive(Debug, Clone, Copy)]
pub enum TableRows<'a> {
    /// The report's: the best `n` runs, then runs without a result, up to `n` rows; a small
    /// experiment's runs in the order of this `report --sort` key.
    Best(usize, &'a str),
    /// The dashboard's: one page of the runs sorted on the server.
    Page(&'a TablePage),
}

/// The view of experiment `name`; `None` when it has no runs. `points(runs, is a top run)`
/// sets how many loss points each drawn run gets. Its counts, ranks and runs are read in one
/// read transaction, so that a run ingested meanwhile cannot be counted yet missing, or read
/// twice at two ranks.
pub fn experiment(
    registry: &Registry,
    name: &str,
    description: &str,
    rows: TableRows<'_>,
    points: impl Fn(usize, bool) -> usize,
) -> Result<Option<ExperimentView>> {
    registry.read_snapshot(|| read(registry, name, description, rows, points))
}

fn read(
    registry: &Registry,
    name: &str,
    description: &str,
    rows: TableRows<'_>,
    points: impl Fn(usize, bool) -> usize,
) -> Result<Option<ExperimentView>> {
    let counts = registry.status_counts(name)?;
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return Ok(None);
    }
    if total <= FULL_DETAIL_RUNS {
        return whole(registry, name, rows, points);
    }
    let ranked = registry.ranked_count(name)?;
    let every = ranked.div_ceil(SAMPLE_RUNS).max(1);
    let top = match rows {
        TableRows::Best(n, _) => n.max(TOP_N),
        TableRows::Page(_) => TOP_N,
    };
    let by_rank = registry.ranked_ids(name, ranked, top, every)?;
    let table_ids = table_ids(registry, name, rows, total, ranked, &by_rank)?;
    // Each run once: the ranked ones first (best first), then the table's other rows.
    let rank_of: HashMap<&str, usize> = by_rank.iter().map(|(k, id)| (id.as_str(), *k)).collect();
    let mut ids: Vec<String> = by_rank.iter().map(|(_, id)| id.clone()).collect();
    ids.extend(
        table_ids
            .iter()
            .filter(|id| !rank_of.contains_key(id.as_str()))
            .cloned(),
    );
    let runs = registry.summaries_of(&ids)?;
    let ranks: Vec<Option<usize>> = runs.iter().map(|r| rank_of.get(r.id.as_str()).copied()).collect();
    let sampled = |k: usize| k.is_multiple_of(every) || k + 1 == ranked;
    // About SAMPLED_OTHERS runs of the sample are drawn one by one, besides the top runs.
    let draw_every = every * ranked.div_ceil(every).div_ceil(SAMPLED_OTHERS).max(1);
    let drawn = ranks
        .iter()
        .map(|r| r.is_some_and(|k| k < TOP_N || k.is_multiple_of(draw_every) || k + 1 == ranked))
        .collect();
    let position: HashMap<&str, usize> = runs.iter().enumerate().map(|(i, r)| (r.id.as_str(), i)).collect();
    let table = table_ids
        .iter()
        .filter_map(|id| position.get(id.as_str()).copied())
        .collect();
    let sample = ranks
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_some_and(sampled))
        .map(|(i, _)| i)
        .collect();
    let refs: Vec<&RunSummary> = runs.iter().collect();
    let params = swept_params(&refs);
    let named = (name.to_owned(), description.to_owned());
    let mut view = views::assemble(registry, named, runs, ranks, drawn, |top| points(total, top))?;
    view.params = params;
    view.at_scale = Some(AtScale {
        total,
        ranked,
        counts,
        sample,
        table,
        page: match rows {
            TableRows::Page(p) => Some(page_index(p, total)),
            TableRows::Best(..) => None,
        },
    });
    view.epoch_envelope = views::epoch_envelope(&view);
    view.loss_envelope = views::loss_envelope(&view);
    Ok(Some(view))
}

/// The view of a small experiment: every run read and drawn, in the table's order.
fn whole(
    registry: &Registry,
    name: &str,
    rows: TableRows<'_>,
    points: impl Fn(usize, bool) -> usize,
) -> Result<Option<ExperimentView>> {
    let filter = RunFilter {
        experiment: Some(name.to_owned()),
        ..RunFilter::default()
    };
    let mut runs = registry.summaries(&filter)?;
    let sort = match rows {
        TableRows::Best(_, sort) => sort,
        TableRows::Page(_) => "bpd8",
    };
    super::sort_runs(&mut runs, sort)?;
    Ok(views::build_owned(registry, runs, points)?.pop())
}

/// The page shown (0-based): the one asked for, or the last there is.
fn page_index(page: &TablePage, total: usize) -> usize {
    page.page.min(total.div_ceil(PAGE_ROWS).max(1) - 1)
}

/// The ids of the table's rows, in order.
fn table_ids(
    registry: &Registry,
    name: &str,
    rows: TableRows<'_>,
    total: usize,
    ranked: usize,
    by_rank: &[(usize, String)],
) -> Result<Vec<String>> {
    Ok(match rows {
        TableRows::Best(n, _) => {
            let mut ids: Vec<String> = by_rank
                .iter()
                .filter(|(k, _)| *k < n)
                .map(|(_, id)| id.clone())
                .collect();
            let left = n.saturating_sub(ids.len()).min(total - ranked.min(total));
            ids.extend(registry.unranked_ids(name, left)?);
            ids
        }
        TableRows::Page(page) => {
            // A key that is no column is refused by the caller; the page is then by rank.
            let column = super::table::sort_column(&page.sort).unwrap_or(SortColumn::Bpd8);
            let offset = page_index(page, total) * PAGE_ROWS;
            registry.page_ids(name, (column, page.descending), ranked, offset, PAGE_ROWS)?
        }
    })
}
