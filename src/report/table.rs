//! The table of an experiment's runs: the report's (best first, the first rows open and the
//! rest folded) and the dashboard's (one page of a large experiment, sorted on the server), with
//! the same header and rows (`templates/report/rows.html`).

use anyhow::Result;
use askama::Template;

use super::markup::{fmt_opt, hex, Links};
use super::views::{ExperimentView, RunView};
use crate::registry::SortColumn;

/// Rows of the runs table shown before the rest is folded away.
const TABLE_ROWS: usize = 50;

/// Rows the report's table lists at most (the first [`TABLE_ROWS`] open, the rest folded); past
/// it a note points to `--format csv`, which lists every run.
pub const REPORT_ROWS: usize = 500;
/// Rows per page of the dashboard's table of a large experiment.
pub const PAGE_ROWS: usize = 50;

/// One run as a table row, its values formatted.
pub(crate) struct Row {
    id: String,
    href: Option<String>,
    colour: String,
    status: String,
    best: bool,
    error: Option<String>,
    params: Vec<String>,
    bpd8: String,
    bpd: String,
    best_epoch: String,
    epochs: String,
    images_per_sec: String,
    wall: String,
    device: String,
}

/// `done/planned` epochs of a run.
fn epochs_text(run: &RunView) -> String {
    let done = run.summary.curves.epochs.last().copied().unwrap_or(0);
    let planned = run.summary.params.get("epochs").and_then(|v| v.as_u64());
    match planned {
        Some(p) => format!("{done}/{p}"),
        None => done.to_string(),
    }
}

fn row(view: &ExperimentView, run: &RunView, links: &dyn Links) -> Row {
    let s = &run.summary;
    Row {
        id: s.id.clone(),
        href: links.run(&s.id),
        colour: hex(run.colour),
        status: s.status.as_str().to_owned(),
        best: run.is_best(),
        error: s.error.clone(),
        params: view.params.iter().map(|p| super::param_text(s, &p.key)).collect(),
        bpd8: fmt_opt(run.bpd8(), 4),
        bpd: fmt_opt(s.best.map(|b| b.bpd), 4),
        best_epoch: s.best.map_or("-".into(), |b| b.epoch.to_string()),
        epochs: epochs_text(run),
        images_per_sec: fmt_opt(s.images_per_sec, 1),
        wall: fmt_opt(s.wall_seconds, 1),
        device: s.device.clone().unwrap_or_else(|| "-".into()),
    }
}

fn keys(view: &ExperimentView) -> Vec<&str> {
    view.params.iter().map(|p| p.key.as_str()).collect()
}

#[derive(Template)]
#[template(path = "report/runs_table.html")]
struct FoldedTable<'a> {
    index: usize,
    name: &'a str,
    keys: Vec<&'a str>,
    open: Vec<Row>,
    folded: Vec<Row>,
    /// Runs past [`REPORT_ROWS`], not listed.
    left_out: usize,
    total: usize,
}

/// All runs, best first; past [`TABLE_ROWS`] the rest is folded into a `<details>`, and past
/// [`REPORT_ROWS`] left out with a note.
pub(crate) fn runs_table(view: &ExperimentView, index: usize, links: &dyn Links) -> Result<String> {
    let order = match &view.at_scale {
        // Read at scale: the rows were chosen in SQL, best first.
        Some(s) => s.table.clone(),
        None => {
            let mut order = view.ranked();
            order.extend((0..view.runs.len()).filter(|&i| view.runs[i].rank.is_none()));
            order
        }
    };
    let left_out = view.run_count().saturating_sub(REPORT_ROWS.min(order.len()));
    let mut order = order;
    order.truncate(REPORT_ROWS);
    let mut open: Vec<Row> = order.iter().map(|&i| row(view, &view.runs[i], links)).collect();
    let folded = open.split_off(open.len().min(TABLE_ROWS));
    let table = FoldedTable {
        index,
        name: &view.name,
        keys: keys(view),
        open,
        folded,
        left_out,
        total: view.run_count(),
    };
    Ok(table.render()?)
}

/// How the dashboard's table of a large experiment is ordered and which page it shows.
#[derive(Debug, Clone, PartialEq)]
pub struct TablePage {
    /// A column of `pixelx report --sort` (`bpd8`, `status`, `id`, a parameter...).
    pub sort: String,
    pub descending: bool,
    /// 0-based.
    pub page: usize,
}

impl Default for TablePage {
    fn default() -> Self {
        Self {
            sort: "bpd8".into(),
            descending: false,
            page: 0,
        }
    }
}

/// Columns the dashboard's table can be sorted by besides the swept parameters.
/// Each with the column the registry sorts a large experiment's runs by.
const SORT_COLUMNS: [(&str, SortColumn<'static>); 5] = [
    ("bpd8", SortColumn::Bpd8),
    ("status", SortColumn::Status),
    ("id", SortColumn::Id),
    ("images_per_sec", SortColumn::ImagesPerSec),
    ("wall", SortColumn::Wall),
];

/// The registry's column for the table's sort key `sort`: one of [`SORT_COLUMNS`] or a run
/// parameter; `None` for anything else.
pub(super) fn sort_column(sort: &str) -> Option<SortColumn<'_>> {
    match SORT_COLUMNS.iter().find(|(k, _)| *k == sort) {
        Some((_, column)) => Some(*column),
        None => crate::config::RUN_KEYS
            .contains(&sort)
            .then_some(SortColumn::Param(sort)),
    }
}

impl TablePage {
    /// Whether `sort` names a column this table can be ordered by.
    pub fn valid_sort(view: &ExperimentView, sort: &str) -> bool {
        SORT_COLUMNS.iter().any(|(k, _)| *k == sort) || view.params.iter().any(|p| p.key == sort)
    }

    /// Whether `sort` may name a column of some experiment's table: one of the table's own or
    /// a run parameter (a column once the experiment sweeps it).
    pub fn maybe_sort(sort: &str) -> bool {
        sort_column(sort).is_some()
    }
}

/// The order of the dashboard's table: runs sorted on the server by `page.sort` (runs without
/// a value last, whatever the direction), ties by rank then id.
fn sorted_order(view: &ExperimentView, page: &TablePage) -> Vec<usize> {
    use std::cmp::Ordering;
    let key = page.sort.as_str();
    let number = |r: &RunView| -> Option<f64> {
        match key {
            "bpd8" => r.bpd8(),
            "images_per_sec" => r.summary.images_per_sec,
            "wall" => r.summary.wall_seconds,
            _ => super::param_text(&r.summary, key).parse().ok(),
        }
    };
    let text = |r: &RunView| -> String {
        match key {
            "status" => r.summary.status.as_str().to_owned(),
            "id" => r.summary.id.clone(),
            _ => super::param_text(&r.summary, key),
        }
    };
    // Each run's value is read once, not at every comparison (a parameter's is a lookup and a
    // string): 100,000 runs take about 1.7 million comparisons.
    let numbers: Vec<Option<f64>> = view.runs.iter().map(number).collect();
    let texts: Vec<String> = if numbers.iter().any(Option::is_none) {
        view.runs.iter().map(text).collect()
    } else {
        Vec::new()
    };
    let mut order: Vec<usize> = (0..view.runs.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (&view.runs[a], &view.runs[b]);
        let by_value = match (numbers[a], numbers[b]) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => return Ordering::Less,
            (None, Some(_)) => return Ordering::Greater,
            (None, None) => texts[a].cmp(&texts[b]),
        };
        let by_value = if page.descending {
            by_value.reverse()
        } else {
            by_value
        };
        by_value
            .then_with(|| ra.rank.unwrap_or(usize::MAX).cmp(&rb.rank.unwrap_or(usize::MAX)))
            .then_with(|| ra.summary.id.cmp(&rb.summary.id))
    });
    order
}

/// A column header's link that sorts the table by it.
struct SortLink {
    href: String,
    column: String,
    /// ` ▲` or ` ▼` on the column the table is sorted by.
    mark: &'static str,
}

#[derive(Template)]
#[template(path = "report/paged_table.html")]
struct PagedTable<'a> {
    /// The id the page links jump back to.
    anchor: String,
    /// 1-based positions of the first and last row shown.
    first: usize,
    last: usize,
    total: usize,
    sort: &'a str,
    descending: bool,
    sort_links: Vec<SortLink>,
    /// 1-based.
    page: usize,
    pages: usize,
    previous: Option<String>,
    next: Option<String>,
    keys: Vec<&'a str>,
    rows: Vec<Row>,
}

/// The dashboard's table of a large experiment: one page of [`PAGE_ROWS`] runs, sorted on the
/// server, with links to sort by each column and to the other pages.
pub(crate) fn paged_table(view: &ExperimentView, page: &TablePage, links: &dyn Links) -> Result<String> {
    let total = view.run_count();
    let pages = total.div_ceil(PAGE_ROWS).max(1);
    let (current, shown) = match view.at_scale.as_ref().filter(|s| s.page.is_some()) {
        // Read at scale: the page was sorted and cut in SQL.
        Some(s) => (s.page.unwrap_or(0), s.table.clone()),
        None => {
            let order = sorted_order(view, page);
            let current = page.page.min(pages - 1);
            (
                current,
                order[current * PAGE_ROWS..((current + 1) * PAGE_ROWS).min(order.len())].to_vec(),
            )
        }
    };
    let href = |sort: &str, descending: bool, to: usize| {
        links
            .table_page(&view.name, sort, descending, to)
            .unwrap_or_default()
    };
    let mut columns: Vec<&str> = vec!["bpd8", "status", "id"];
    columns.extend(keys(view));
    let sort_links = columns
        .into_iter()
        .map(|c| {
            let sorted = c == page.sort;
            SortLink {
                href: href(c, sorted && !page.descending, 0),
                column: c.to_owned(),
                mark: match (sorted, page.descending) {
                    (true, false) => " ▲",
                    (true, true) => " ▼",
                    _ => "",
                },
            }
        })
        .collect();
    let table = PagedTable {
        anchor: format!("runs-{}", super::markup::url_segment(&view.name)),
        first: current * PAGE_ROWS + 1,
        last: current * PAGE_ROWS + shown.len(),
        total,
        sort: &page.sort,
        descending: page.descending,
        sort_links,
        page: current + 1,
        pages,
        previous: (current > 0).then(|| href(&page.sort, page.descending, current - 1)),
        next: (current + 1 < pages).then(|| href(&page.sort, page.descending, current + 1)),
        keys: keys(view),
        rows: shown.iter().map(|&i| row(view, &view.runs[i], links)).collect(),
    };
    Ok(table.render()?)
}
