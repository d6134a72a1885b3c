//! The parts of an experiment's section besides the charts: status counts, the legend of the top
//! runs, the importance table, the best runs' samples and the (folded) table of all runs.

use std::fmt::Write as _;

use super::html::{badge, escape, fmt_opt, run_link, swatch, Images};
use super::importance;
use super::views::{ExperimentView, RunView, TOP_N};

/// Rows of the runs table shown before the rest is folded away.
const TABLE_ROWS: usize = 50;
/// Best runs whose sample grids are shown side by side.
const SAMPLE_RUNS: usize = 3;
/// Epochs per run in the sample comparison (first, last, best and evenly between).
const SAMPLE_EPOCHS: usize = 6;

/// `done/planned` epochs of a run.
fn epochs_text(run: &RunView) -> String {
    let done = run.summary.curves.epochs.last().copied().unwrap_or(0);
    let planned = run.summary.params.get("epochs").and_then(|v| v.as_u64());
    match planned {
        Some(p) => format!("{done}/{p}"),
        None => done.to_string(),
    }
}

fn table_header(view: &ExperimentView) -> String {
    let mut h = String::from("<thead><tr><th>run</th><th>status</th>");
    for p in &view.params {
        let _ = write!(h, "<th>{}</th>", escape(&p.key));
    }
    h += "<th>best bpd8</th><th>bpd</th><th>best epoch</th><th>epochs</th><th>img/s</th><th>wall s</th>\
          <th>device</th></tr></thead>";
    h
}

fn table_row(view: &ExperimentView, run: &RunView, links: bool) -> String {
    let s = &run.summary;
    let status_class: String = s
        .status
        .as_str()
        .chars()
        .filter(|c| c.is_ascii_lowercase())
        .collect();
    let best = if run.is_best() { " best" } else { "" };
    let mut row = format!(
        "<tr class=\"run-row st-row-{status_class}{best}\" data-run=\"{}\" data-status=\"{}\"><td>{}{}</td><td>{}",
        escape(&s.id),
        escape(s.status.as_str()),
        swatch(run),
        run_link(&s.id, links),
        badge(s.status.as_str())
    );
    if let Some(e) = &s.error {
        let _ = write!(row, " <span class=\"err\" title=\"{}\">!</span>", escape(e));
    }
    row += "</td>";
    for p in &view.params {
        let _ = write!(row, "<td>{}</td>", escape(&super::param_text(s, &p.key)));
    }
    let _ = write!(
        row,
        "<td class=\"num bpd8\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
         <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
        fmt_opt(run.bpd8(), 4),
        fmt_opt(s.best.map(|b| b.bpd), 4),
        s.best.map_or("-".into(), |b| b.epoch.to_string()),
        epochs_text(run),
        fmt_opt(s.images_per_sec, 1),
        fmt_opt(s.wall_seconds, 1),
        escape(s.device.as_deref().unwrap_or("-"))
    );
    row
}

/// Rows the report's table lists at most (the first [`TABLE_ROWS`] open, the rest folded); past
/// it a note points to `--format csv`, which lists every run.
pub const REPORT_ROWS: usize = 500;
/// Rows per page of the dashboard's table of a large experiment.
pub const PAGE_ROWS: usize = 50;

/// All runs, best first; past [`TABLE_ROWS`] the rest is folded into a `<details>`, and past
/// [`REPORT_ROWS`] left out with a note.
pub(super) fn runs_table(view: &ExperimentView, index: usize, links: bool) -> String {
    let mut order = view.ranked();
    order.extend((0..view.runs.len()).filter(|&i| view.runs[i].rank.is_none()));
    let left_out = order.len().saturating_sub(REPORT_ROWS);
    order.truncate(REPORT_ROWS);
    let mut out = folded_table(view, &order, index, links);
    if left_out > 0 {
        let _ = write!(
            out,
            "<p class=\"key table-note\">{left_out} more runs are not listed here; \
             <code>pixelx report --experiment {} --format csv</code> lists all {}.</p>",
            escape(&view.name),
            view.runs.len()
        );
    }
    out
}

/// The runs at `order`, the first [`TABLE_ROWS`] open and the rest in a `<details>`.
fn folded_table(view: &ExperimentView, order: &[usize], index: usize, links: bool) -> String {
    let header = table_header(view);
    let rows: Vec<String> = order
        .iter()
        .map(|&i| table_row(view, &view.runs[i], links))
        .collect();
    let mut out = format!("<table class=\"runs\">{header}<tbody>");
    for r in rows.iter().take(TABLE_ROWS) {
        out += r;
    }
    out += "</tbody></table>";
    if rows.len() > TABLE_ROWS {
        let _ = write!(
            out,
            "<details id=\"more-{index}\"><summary>{} more runs</summary><table class=\"runs\">{header}<tbody>",
            rows.len() - TABLE_ROWS
        );
        for r in &rows[TABLE_ROWS..] {
            out += r;
        }
        out += "</tbody></table></details>";
    }
    out
}

/// The top runs with their colours: the legend of every chart of the experiment.
pub(super) fn legend(view: &ExperimentView, links: bool) -> String {
    let ranked = view.ranked();
    if ranked.is_empty() {
        return String::new();
    }
    let mut out = String::from("<ol class=\"legend\">");
    for &i in ranked.iter().take(TOP_N) {
        let r = &view.runs[i];
        let params: Vec<String> = view
            .params
            .iter()
            .map(|p| format!("{}={}", p.key, super::param_text(&r.summary, &p.key)))
            .collect();
        let _ = write!(
            out,
            "<li>{}{} {} <b>{}</b> <span class=\"muted\">{}</span></li>",
            swatch(r),
            run_link(&r.summary.id, links),
            badge(r.summary.status.as_str()),
            fmt_opt(r.bpd8(), 4),
            escape(&params.join(" "))
        );
    }
    out += "</ol>";
    if ranked.len() > TOP_N {
        let _ = write!(
            out,
            "<p class=\"key\">{} more runs in grey.</p>",
            ranked.len() - TOP_N
        );
    }
    out
}

pub(super) fn importance_table(view: &ExperimentView) -> String {
    let Some(t) = importance::main_effects(view) else {
        return "<p class=\"key\">Parameter importance needs at least 3 completed runs that differ.</p>"
            .into();
    };
    let mut out = String::from(
        "<table class=\"importance\"><thead><tr><th>parameter</th><th>variance explained</th>\
         <th>levels</th><th>best level (mean)</th></tr></thead><tbody>",
    );
    for r in &t.rows {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{:.1}%</td><td class=\"num\">{}{}</td><td>{}</td></tr>",
            escape(&r.key),
            r.share * 100.0,
            r.levels,
            if r.binned { " bins" } else { "" },
            escape(&r.best_level)
        );
    }
    let _ = write!(
        out,
        "<tr class=\"muted\"><td>interactions and noise</td><td class=\"num\">{:.1}%</td><td></td><td></td></tr>\
         </tbody></table><p class=\"key\">Share of the variance of best test bpd8 over {} completed runs \
         explained by each parameter's main effect (functional ANOVA of the recorded results; binned \
         parameters approximately).</p>",
        t.rest * 100.0,
        t.runs
    );
    out
}

/// Up to `n` epochs of `all`: the first, the last, `best`, and evenly spaced ones between.
fn pick_epochs(all: &[u32], best: Option<u32>, n: usize) -> Vec<u32> {
    if all.len() <= n {
        return all.to_vec();
    }
    let mut picked: Vec<u32> = (0..n.saturating_sub(1))
        .map(|k| all[k * (all.len() - 1) / (n - 1).max(1)])
        .collect();
    picked.push(all[all.len() - 1]);
    // The best epoch replaces the last of the evenly spaced ones (never the final epoch).
    if let Some(b) = best.filter(|b| all.contains(b) && !picked.contains(b)) {
        match picked.len() {
            0 | 1 => picked.push(b),
            len => picked[len - 2] = b,
        }
    }
    picked.sort_unstable();
    picked.dedup();
    picked
}

fn sample_figures(run: &RunView, epochs: &[u32], images: &Images) -> String {
    let mut out = String::new();
    let best = run.summary.best.map(|b| b.epoch);
    for &e in epochs {
        if let Some(src) = images.src_for(&run.summary.id, e) {
            let mark = if Some(e) == best { " (best)" } else { "" };
            let _ = write!(
                out,
                "<figure><figcaption>epoch {e}{mark}</figcaption><img alt=\"samples of run {} at epoch {e}\" \
                 src=\"{}\"></figure>",
                escape(&run.summary.id),
                escape(&src)
            );
        }
    }
    out
}

/// Sample grids of the best runs side by side, per recorded epoch.
pub(super) fn samples_section(view: &ExperimentView, images: &Images) -> String {
    let mut out = String::new();
    for &i in view.ranked().iter().take(SAMPLE_RUNS) {
        let r = &view.runs[i];
        if r.sample_epochs.is_empty() {
            continue;
        }
        let epochs = pick_epochs(&r.sample_epochs, r.summary.best.map(|b| b.epoch), SAMPLE_EPOCHS);
        let figures = sample_figures(r, &epochs, images);
        if figures.is_empty() {
            continue;
        }
        let _ = write!(
            out,
            "<div class=\"row\"><div class=\"who\">{}{}<br>bpd8 {}</div>{figures}</div>",
            swatch(r),
            run_link(&r.summary.id, images.links()),
            fmt_opt(r.bpd8(), 4)
        );
    }
    if out.is_empty() {
        return String::new();
    }
    format!("<h3>Samples of the best runs</h3><div class=\"samples\">{out}</div>")
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
const SORT_COLUMNS: [&str; 5] = ["bpd8", "status", "id", "images_per_sec", "wall"];

impl TablePage {
    /// Whether `sort` names a column this table can be ordered by.
    pub fn valid_sort(view: &ExperimentView, sort: &str) -> bool {
        SORT_COLUMNS.contains(&sort) || view.params.iter().any(|p| p.key == sort)
    }

    fn href(&self, view: &ExperimentView, sort: &str, descending: bool, page: usize) -> String {
        let _ = self;
        format!(
            "/experiments/{}?sort={}&amp;desc={}&amp;page={}#runs-{}",
            super::html::url_segment(&view.name),
            super::html::url_segment(sort),
            u8::from(descending),
            page + 1,
            super::html::url_segment(&view.name)
        )
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

/// The dashboard's table of a large experiment: one page of [`PAGE_ROWS`] runs, sorted on the
/// server, with links to sort by each column and to the other pages.
pub(super) fn paged_table(view: &ExperimentView, page: &TablePage) -> String {
    let order = sorted_order(view, page);
    let pages = order.len().div_ceil(PAGE_ROWS).max(1);
    let current = page.page.min(pages - 1);
    let rows = &order[current * PAGE_ROWS..((current + 1) * PAGE_ROWS).min(order.len())];
    let mut columns: Vec<String> = vec!["bpd8".into(), "status".into(), "id".into()];
    columns.extend(view.params.iter().map(|p| p.key.clone()));
    let sort_links: Vec<String> = columns
        .iter()
        .map(|c| {
            let descending = *c == page.sort && !page.descending;
            let mark = match (*c == page.sort, page.descending) {
                (true, false) => " ▲",
                (true, true) => " ▼",
                _ => "",
            };
            format!(
                "<a href=\"{}\">{}{mark}</a>",
                page.href(view, c, descending, 0),
                escape(c)
            )
        })
        .collect();
    let mut nav = format!(
        "<nav class=\"pages\" id=\"runs-{}\">runs {}–{} of {}, sorted by <b>{}</b>{} · sort by {} · page {} of {pages}",
        escape(&super::html::url_segment(&view.name)),
        current * PAGE_ROWS + 1,
        current * PAGE_ROWS + rows.len(),
        order.len(),
        escape(&page.sort),
        if page.descending { " (descending)" } else { "" },
        sort_links.join(" "),
        current + 1
    );
    if current > 0 {
        let _ = write!(
            nav,
            " · <a rel=\"prev\" href=\"{}\">previous</a>",
            page.href(view, &page.sort, page.descending, current - 1)
        );
    }
    if current + 1 < pages {
        let _ = write!(
            nav,
            " · <a rel=\"next\" href=\"{}\">next</a>",
            page.href(view, &page.sort, page.descending, current + 1)
        );
    }
    nav += "</nav>";
    let mut out = nav;
    let _ = write!(out, "<table class=\"runs\">{}<tbody>", table_header(view));
    for &i in rows {
        out += &table_row(view, &view.runs[i], true);
    }
    out += "</tbody></table>";
    out
}

pub(super) fn status_line(view: &ExperimentView) -> String {
    let parts: Vec<String> = view
        .status_counts()
        .iter()
        .map(|(s, n)| format!("{n} {}", badge(s.as_str())))
        .collect();
    format!("<p>{} runs: {}</p>", view.runs.len(), parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_epochs_keep_first_last_and_best() {
        let all: Vec<u32> = (1..=20).collect();
        let p = pick_epochs(&all, Some(13), 6);
        assert!(p.contains(&1) && p.contains(&20) && p.contains(&13), "{p:?}");
        assert!(p.len() <= 6);
        assert_eq!(pick_epochs(&[1, 2], None, 6), vec![1, 2]);
    }
}
