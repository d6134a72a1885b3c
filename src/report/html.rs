//! The HTML views, shared by `pixelx report --html` (one self-contained file, no scripts, images
//! embedded as data URLs) and `pixelx serve` (which renders the same sections with its own
//! [`Links`] and wraps them in its pages).
//!
//! Markup lives in `templates/`; askama escapes every value the templates print (see
//! [`super::markup`]). Run ids are additionally checked by [`super::safe_run_id`] before they
//! name a file or a link.

use std::path::Path;

use anyhow::Result;
use askama::Template;

pub use super::markup::{escape, url_segment, Embedded, Links};
pub use super::section::{experiment_section, experiment_section_paged};
pub use super::table::{TablePage, PAGE_ROWS, REPORT_ROWS};
use super::views::ExperimentView;

/// A whole page around `body` (HTML rendered by another template). `script` adds a script
/// element with that `src` (the dashboard's update script; the report has no script at all).
#[derive(Template)]
#[template(path = "page.html")]
pub struct Page<'a> {
    pub title: &'a str,
    pub script: Option<&'a str>,
    pub body: &'a str,
}

/// [`Page`], rendered.
pub fn page(title: &str, body: &str, script: Option<&str>) -> Result<String> {
    let mut html = Page { title, script, body }.render()?;
    // askama drops the template file's final newline; the page, a text file, ends with one.
    html.push('\n');
    Ok(html)
}

#[derive(Template)]
#[template(path = "report/report.html")]
struct ReportBody {
    runs: usize,
    written: String,
    sections: Vec<String>,
}

/// The report page: every experiment's section, images embedded from `runs_dir`.
pub fn report_page(views: &[ExperimentView], runs_dir: &Path) -> Result<String> {
    let links = Embedded(runs_dir);
    let sections = views
        .iter()
        .enumerate()
        .map(|(i, v)| experiment_section(v, i, &links))
        .collect::<Result<Vec<_>>>()?;
    let body = ReportBody {
        runs: views.iter().map(|v| v.run_count()).sum(),
        written: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        sections,
    }
    .render()?;
    page("pixelx report", &body, None)
}

/// Writes the self-contained report of `runs` to `path`.
pub fn write_html(
    registry: &crate::registry::Registry,
    runs: &[crate::registry::RunSummary],
    runs_dir: &Path,
    path: &Path,
) -> Result<()> {
    let views = super::views::build(registry, runs)?;
    let html = report_page(&views, runs_dir)?;
    crate::fsio::write_atomically(path, html.as_bytes())
}

/// Writes the self-contained report of every run of `experiment` (or of every experiment),
/// reading at scale: an experiment of more than 50 runs is counted, ranked and cut to its best
/// [`REPORT_ROWS`] in SQL, and only the runs shown are read (see [`super::scaled`]). `sort` (a
/// `report --sort` key) orders the table of a small experiment's runs without a result.
pub fn write_report(
    registry: &crate::registry::Registry,
    experiment: Option<&str>,
    sort: &str,
    runs_dir: &Path,
    path: &Path,
) -> Result<Vec<String>> {
    let mut views = Vec::new();
    for e in registry.experiments()? {
        if experiment.is_some_and(|name| name != e.name) {
            continue;
        }
        let rows = super::scaled::TableRows::Best(REPORT_ROWS, sort);
        views.extend(super::scaled::experiment(
            registry,
            &e.name,
            &e.description,
            rows,
            super::views::loss_points,
        )?);
    }
    let html = report_page(&views, runs_dir)?;
    crate::fsio::write_atomically(path, html.as_bytes())?;
    // The parameters swept in any experiment, as its view found them (over every run of a small
    // experiment, over the rank-spaced sample of a large one), in the order of `RUN_KEYS`.
    let swept = |k: &&&str| views.iter().any(|v| v.params.iter().any(|p| p.key == **k));
    Ok(crate::config::RUN_KEYS
        .iter()
        .filter(swept)
        .map(|k| k.to_string())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::views::{tests::summary, RunView};

    /// An experiment of runs with these statuses and epochs, best first.
    fn view_of(runs: &[(&str, u32)]) -> ExperimentView {
        let runs = runs
            .iter()
            .enumerate()
            .map(|(i, (status, epochs))| {
                let mut s = summary(
                    &format!("run{i}"),
                    Some(2.0 + i as f64),
                    serde_json::json!({"seed": i}),
                );
                s.status = crate::registry::RunStatus::parse(status).unwrap();
                s.curves.epochs = (1..=*epochs).collect();
                s.curves.test_bpd8 = (1..=*epochs).map(|e| 3.0 - 0.1 * e as f64 + i as f64).collect();
                RunView {
                    summary: s,
                    rank: Some(i),
                    colour: (10, 20, 30),
                    loss: Default::default(),
                    sample_epochs: vec![],
                    drawn: true,
                }
            })
            .collect();
        ExperimentView {
            name: "e".into(),
            description: String::new(),
            runs,
            params: vec![],
            epoch_envelope: None,
            loss_envelope: None,
            at_scale: None,
        }
    }

    #[test]
    fn a_pruned_run_is_labelled_in_the_table_and_where_its_curve_ends() {
        let view = view_of(&[("completed", 4), ("pruned", 2), ("failed", 1)]);
        let html = experiment_section(&view, 0, &Embedded(Path::new("runs"))).unwrap();
        assert!(html.contains("data-status=\"pruned\"") && html.contains("st-pruned\">pruned</span>"));
        let chart = &html[html.find("chart epochs").unwrap()..];
        let chart = &chart[..chart.find("</figure>").unwrap()];
        assert!(chart.contains("\npruned\n</text>") && chart.contains("\nfailed\n</text>"));
        assert!(
            !chart.contains("\ncompleted\n</text>"),
            "only early ends are marked"
        );
        assert!(
            chart.contains("<polygon"),
            "a triangle where the pruned run stopped"
        );
    }

    #[test]
    fn hostile_experiment_names_are_escaped_and_badges_keep_their_class() {
        // A run's status is a `RunStatus` now, so only names can carry markup into a section.
        let mut view = view_of(&[("pruned", 1)]);
        view.name = "<i>e</i> & \"q\"".into();
        let html = experiment_section(&view, 0, &Embedded(Path::new("runs"))).unwrap();
        assert!(
            html.contains("<span class=\"badge st-pruned\">pruned</span>"),
            "{html}"
        );
        assert!(html.contains("<h2>&#60;i&#62;e&#60;/i&#62; &#38; &#34;q&#34;</h2>"));
        assert!(!html.contains("<b>\"") && !html.contains("<i>"));
        let page = page("<t>", &html, None).unwrap();
        assert!(page.contains("<title>&#60;t&#62;</title>") && !page.contains("<script"));
    }
}
