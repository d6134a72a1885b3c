//! HTML of the comparison views, shared by `pixelx report --html` (one self-contained file, no
//! scripts, images embedded as data URLs) and `pixelx serve` (images linked from `/img/...`).
//!
//! Every string that came from a user, a file or the registry goes through [`escape`]; run ids
//! are additionally checked by [`super::safe_run_id`] before they name a file or a link.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use base64::Engine;

use super::charts;
pub use super::sections::TablePage;
use super::sections::{importance_table, legend, paged_table, runs_table, samples_section, status_line};
use super::views::{ExperimentView, RunView, TOP_N};
use crate::run_dir::RunDir;

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes `s` for one URL path segment (everything but unreserved characters, dots
/// included).
pub fn url_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

/// Everything but RFC 3986's unreserved characters, dots included: a literal `..` or `.` segment
/// is folded away by any client (`/x/..` is `/`); browsers fold `%2E%2E` as well (see
/// `experiment_href`).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'~');

/// The dashboard's link to an experiment's page. A name that is a dot segment (`.`, `..`) goes
/// in the query: in a path, browsers fold it away even percent-encoded (`/experiments/%2E%2E`
/// is `/` by the WHATWG URL standard).
pub fn experiment_href(name: &str) -> String {
    if name == "." || name == ".." {
        format!("/experiments?name={}", url_segment(name))
    } else {
        format!("/experiments/{}", url_segment(name))
    }
}

/// Where sample images come from.
pub enum Images<'a> {
    /// Read from the run folders under this directory and embedded (the report).
    Embedded(&'a Path),
    /// Linked as `/img/<run>/<epoch>` (the dashboard).
    Linked,
}

impl Images<'_> {
    /// The `src` of a run's sample grid at `epoch`, or `None` if it cannot be shown.
    pub fn src_for(&self, run_id: &str, epoch: u32) -> Option<String> {
        if !super::safe_run_id(run_id) {
            return None;
        }
        match self {
            Images::Linked => Some(format!("/img/{run_id}/{epoch}")),
            Images::Embedded(runs_dir) => {
                let bytes = std::fs::read(RunDir::new(runs_dir, run_id).epoch_samples(epoch)).ok()?;
                Some(format!(
                    "data:image/png;base64,{}",
                    base64::engine::general_purpose::STANDARD.encode(bytes)
                ))
            }
        }
    }

    pub(super) fn links(&self) -> bool {
        matches!(self, Images::Linked)
    }
}

pub const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:20px 28px;color:#222;background:#fafafa}\
a{color:#1f5fa8}h1{margin:0 0 6px}h2{margin:34px 0 4px;border-bottom:2px solid #ddd;padding-bottom:4px}\
h3{margin:22px 0 8px;font-size:16px}table{border-collapse:collapse;font-size:13px;background:#fff}\
th,td{border:1px solid #d8d8d8;padding:3px 8px;text-align:left;white-space:nowrap}th{background:#f0f0f0}\
td.num{text-align:right;font-variant-numeric:tabular-nums}tr.best{background:#e8f5e8;font-weight:600}\
.charts{display:flex;flex-wrap:wrap;gap:14px}figure{margin:0;background:#fff;border:1px solid #ddd;\
border-radius:6px;padding:6px}figcaption{font-size:13px;color:#444;margin:2px 4px 4px}\
figure svg{display:block;max-width:100%;height:auto}.sw{display:inline-block;width:12px;height:12px;\
border-radius:2px;vertical-align:middle;margin-right:4px}.legend{font-size:13px;columns:2;max-width:1100px;\
padding-left:22px}.key{font-size:12px;color:#555}.badge{display:inline-block;padding:0 6px;border-radius:8px;\
font-size:12px;background:#ddd;color:#222}.st-completed{background:#d4edda}.st-running{background:#cfe2ff}\
.st-queued{background:#eee}.st-pruned{background:#fff0c2}.st-failed,.st-diverged{background:#f8d0d0;\
color:#7a0000}.st-interrupted{background:#e6d8f0}.samples{display:flex;flex-direction:column;gap:10px}\
.samples .row{display:flex;gap:8px;align-items:flex-end;flex-wrap:wrap}.samples img{image-rendering:pixelated;\
width:150px;display:block;border:1px solid #ccc}.samples .who{width:190px;font-size:13px}\
.samples figure{padding:3px}.muted{color:#777}.desc{color:#444;margin:2px 0 10px}dl.facts{display:grid;\
grid-template-columns:max-content auto;gap:2px 14px;font-size:14px}dl.facts dt{color:#555}dl.facts dd{margin:0}\
nav{font-size:14px;margin-bottom:10px}.err{color:#7a0000}";

/// A whole page around `body`. `live` adds the dashboard's update script (served by the
/// dashboard itself; the report has no script at all).
pub fn page(title: &str, body: &str, live: bool) -> String {
    let script = if live {
        "<script src=\"/static/live.js\" defer></script>"
    } else {
        ""
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <meta name=\"viewport\" content=\"width=device-width\"><style>{STYLE}</style>{script}</head>\
         <body>{body}</body></html>\n",
        escape(title)
    )
}

fn hex(c: (u8, u8, u8)) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

pub(super) fn swatch(run: &RunView) -> String {
    format!(
        "<span class=\"sw\" style=\"background:{}\"></span>",
        hex(run.colour)
    )
}

/// A status label; the class is built from letters only, whatever the status string holds.
pub fn badge(status: &str) -> String {
    let class: String = status.chars().filter(|c| c.is_ascii_lowercase()).collect();
    format!("<span class=\"badge st-{class}\">{}</span>", escape(status))
}

/// The run id, linked to its page on the dashboard.
pub(super) fn run_link(id: &str, links: bool) -> String {
    if links && super::safe_run_id(id) {
        format!("<a href=\"/runs/{}\">{}</a>", url_segment(id), escape(id))
    } else {
        escape(id)
    }
}

pub(super) fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite())
        .map_or("-".into(), |v| format!("{v:.digits$}"))
}

fn figure(caption: &str, svg: Option<String>, class: &str) -> String {
    match svg {
        Some(svg) => format!("<figure class=\"{class}\"><figcaption>{caption}</figcaption>{svg}</figure>"),
        None => String::new(),
    }
}

/// One experiment: overlaid curves, parameter charts, importance, best samples, all runs.
pub fn experiment_section(view: &ExperimentView, index: usize, images: &Images) -> Result<String> {
    experiment_section_paged(view, index, images, None)
}

/// [`experiment_section`]; with `page` (the dashboard), the table of a summarised experiment is
/// that page of runs, sorted on the server, rather than the report's first runs.
pub fn experiment_section_paged(
    view: &ExperimentView,
    index: usize,
    images: &Images,
    page: Option<&TablePage>,
) -> Result<String> {
    let links = images.links();
    let title = if links {
        format!(
            "<a href=\"{}\">{}</a>",
            experiment_href(&view.name),
            escape(&view.name)
        )
    } else {
        escape(&view.name)
    };
    let mut out = format!("<section class=\"experiment\" id=\"experiment-{index}\"><h2>{title}</h2>",);
    if !view.description.is_empty() {
        let _ = write!(out, "<p class=\"desc\">{}</p>", escape(&view.description));
    }
    out += &status_line(view);
    let curves = [
        figure(
            "Test bpd8 per epoch",
            charts::epoch_chart(view, (600, 330))?,
            "chart epochs",
        ),
        figure(
            "Training loss per step (smoothed; raw values faint)",
            charts::loss_chart(view, (600, 330))?,
            "chart steps",
        ),
    ]
    .concat();
    if !curves.is_empty() {
        let _ = write!(
            out,
            "<div class=\"charts\">{curves}</div><p class=\"key\">Top {TOP_N} runs in colour, best thickest; \
             markers where a run ended early: × failed or diverged, ▲ pruned, ○ running or interrupted.{}</p>",
            summary_key(view)
        );
    }
    out += &legend(view, links);
    if !view.params.is_empty() {
        let mut charts_html = String::new();
        for p in &view.params {
            let caption = format!("best test bpd8 by {}", escape(&p.key));
            charts_html += &figure(
                &caption,
                super::param_charts::param_chart(view, p, (360, 260))?,
                "chart param",
            );
        }
        if let Some(svg) = super::param_charts::parallel_chart(view)? {
            charts_html += &figure("Parameters → best test bpd8", Some(svg), "chart parallel");
        }
        if !charts_html.is_empty() {
            let _ = write!(
                out,
                "<h3>Parameters</h3><div class=\"charts\">{charts_html}</div>"
            );
        }
        out += "<h3>Parameter importance</h3>";
        out += &importance_table(view);
    }
    out += &samples_section(view, images);
    out += "<h3>Runs</h3>";
    out += &match page {
        Some(page) if view.summarised() => paged_table(view, page),
        _ => runs_table(view, index, links),
    };
    out += "</section>";
    Ok(out)
}

/// What a summarised experiment's charts stand for, for the key under them.
fn summary_key(view: &ExperimentView) -> String {
    if !view.summarised() {
        return String::new();
    }
    let mut out = String::new();
    if let Some(env) = &view.epoch_envelope {
        let _ = write!(
            out,
            " <span class=\"envelope\" data-runs=\"{}\">The other {} runs are the grey band: \
             faint from lowest to highest, darker from the 10th to the 90th percentile, the line their median",
            env.runs, env.runs
        );
        if let Some(loss) = &view.loss_envelope {
            let _ = write!(
                out,
                " (training loss: {} of them, evenly spaced by rank)",
                loss.runs
            );
        }
        out += ".</span>";
    }
    let drawn = view.runs.iter().filter(|r| r.drawn).count();
    let _ = write!(
        out,
        " Parameter charts show the top {TOP_N} and {} more runs evenly spaced by rank, of {}.",
        drawn.saturating_sub(TOP_N.min(drawn)),
        view.runs.len()
    );
    out
}

/// The report page: every experiment's section, images embedded from `runs_dir`.
pub fn report_page(views: &[ExperimentView], runs_dir: &Path) -> Result<String> {
    let runs: usize = views.iter().map(|v| v.runs.len()).sum();
    let mut body = format!(
        "<h1>pixelx report</h1><p class=\"muted\">{runs} run(s) in {} experiment(s), written {}.</p>",
        views.len(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    let images = Images::Embedded(runs_dir);
    for (i, v) in views.iter().enumerate() {
        body += &experiment_section(v, i, &images)?;
    }
    Ok(page("pixelx report", &body, false))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        assert_eq!(url_segment("../a b/<x>"), "%2E%2E%2Fa%20b%2F%3Cx%3E");
        assert_eq!(url_segment(".."), "%2E%2E");
        assert_eq!(experiment_href(".."), "/experiments?name=%2E%2E");
        assert_eq!(experiment_href("a.b"), "/experiments/a%2Eb");
    }

    #[test]
    fn a_pruned_run_is_labelled_in_the_table_and_where_its_curve_ends() {
        use crate::report::views::{tests::summary, ExperimentView, RunView};
        let mut runs = Vec::new();
        for (i, (status, epochs)) in [("completed", 4u32), ("pruned", 2), ("failed", 1)]
            .into_iter()
            .enumerate()
        {
            let mut s = summary(
                &format!("run{i}"),
                Some(2.0 + i as f64),
                serde_json::json!({"seed": i}),
            );
            s.status = crate::registry::RunStatus::parse(status).unwrap();
            s.curves.epochs = (1..=epochs).collect();
            s.curves.test_bpd8 = (1..=epochs).map(|e| 3.0 - 0.1 * e as f64 + i as f64).collect();
            runs.push(RunView {
                summary: s,
                rank: Some(i),
                colour: (10, 20, 30),
                loss: Default::default(),
                sample_epochs: vec![],
                drawn: true,
            });
        }
        let view = ExperimentView {
            name: "e".into(),
            description: String::new(),
            runs,
            params: vec![],
            epoch_envelope: None,
            loss_envelope: None,
        };
        let html = experiment_section(&view, 0, &Images::Linked).unwrap();
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
    fn badges_keep_unknown_statuses_as_text_and_classes_clean() {
        assert_eq!(badge("pruned"), "<span class=\"badge st-pruned\">pruned</span>");
        assert_eq!(
            badge("<b>\" x"),
            "<span class=\"badge st-bx\">&lt;b&gt;&quot; x</span>"
        );
    }
}
