//! What every HTML view shares: askama's escaping (the one escaping function), URL segments,
//! the link-maker the views take, the stylesheet, and small value formats.
//!
//! The views never build markup by hand: `templates/` holds it, and askama escapes every value
//! a template prints unless the template marks it `|safe`. Only two kinds of value are: HTML
//! that another template rendered, and SVG charts drawn by plotters, whose SVG backend escapes
//! every text and attribute value it writes (run statuses, parameter names and values).

use std::path::Path;

use base64::Engine;

use crate::run_dir::RunDir;

/// `s` escaped for HTML text and attribute values, exactly as the templates escape what they
/// print (askama's HTML escaper: `& < > " '` become character references).
pub fn escape(s: &str) -> String {
    askama::filters::escape(s, askama::filters::Html)
        .map(|safe| safe.to_string())
        .unwrap_or_default()
}

/// Percent-encodes `s` for one URL path segment (everything but unreserved characters, dots
/// included).
pub fn url_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

/// Everything but RFC 3986's unreserved characters, dots included: a literal `..` or `.` segment
/// is folded away by any client (`/x/..` is `/`); browsers fold `%2E%2E` as well (see the
/// dashboard's links).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'~');

/// Where the views link to. The report links nowhere and embeds its images; the dashboard
/// (`crate::serve`) links its own routes. The views only ask.
pub trait Links {
    /// The link to a run's page, or `None` to show the id as text.
    fn run(&self, id: &str) -> Option<String>;
    /// The link to an experiment's page, or `None` to show the name as text.
    fn experiment(&self, name: &str) -> Option<String>;
    /// The `src` of a run's sample grid at `epoch`, or `None` if it cannot be shown.
    fn sample(&self, run_id: &str, epoch: u32) -> Option<String>;
    /// The link to one page of an experiment's runs table sorted by `sort` (0-based `page`);
    /// `None` where the table is not paged.
    fn table_page(&self, experiment: &str, sort: &str, descending: bool, page: usize) -> Option<String>;
}

/// The self-contained report's links: none, and sample grids read from the run folders under
/// this directory and embedded as data URLs.
pub struct Embedded<'a>(pub &'a Path);

impl Links for Embedded<'_> {
    fn run(&self, _: &str) -> Option<String> {
        None
    }

    fn experiment(&self, _: &str) -> Option<String> {
        None
    }

    fn sample(&self, run_id: &str, epoch: u32) -> Option<String> {
        if !super::safe_run_id(run_id) {
            return None;
        }
        let bytes = std::fs::read(RunDir::new(self.0, run_id).epoch_samples(epoch)).ok()?;
        Some(format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        ))
    }

    fn table_page(&self, _: &str, _: &str, _: bool, _: usize) -> Option<String> {
        None
    }
}

/// The class suffix of a status label: letters only, whatever the status string holds.
pub fn status_class(status: &str) -> String {
    status.chars().filter(|c| c.is_ascii_lowercase()).collect()
}

/// A palette colour as CSS.
pub fn hex(c: (u8, u8, u8)) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// A number with `digits` decimals, `-` when absent or not finite.
pub fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite())
        .map_or("-".into(), |v| format!("{v:.digits$}"))
}

/// A chart with its caption. `svg` is plotters' output (see the module docs) and is printed as
/// it is.
pub struct Figure {
    pub caption: String,
    pub class: &'static str,
    pub svg: String,
}

impl Figure {
    /// The figure of a chart that was drawn; `None` when there was nothing to draw.
    pub fn of(caption: impl Into<String>, svg: Option<String>, class: &'static str) -> Option<Self> {
        svg.map(|svg| Self {
            caption: caption.into(),
            class,
            svg,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62;&#38;&#34;"
        );
        assert_eq!(url_segment("../a b/<x>"), "%2E%2E%2Fa%20b%2F%3Cx%3E");
        assert_eq!(url_segment(".."), "%2E%2E");
        assert_eq!(status_class("<b>\" x"), "bx");
    }
}
