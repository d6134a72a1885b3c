//! One run in full, for the dashboard's `/runs/<id>`: facts, configuration, curves, samples per
//! epoch, checkpoints and state history.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use super::html::{badge, escape, experiment_href, Images};
use super::views::{self, ExperimentView};
use crate::registry::views::CheckpointRow;
use crate::registry::{Registry, RunFilter};
use crate::run_dir::RunDir;

/// Most sample grids shown on a run page (evenly picked when a run recorded more).
const MAX_SAMPLES: usize = 40;

pub struct RunPage {
    /// The run alone, as a one-run experiment view (for its curves and colours).
    pub view: ExperimentView,
    pub events: Vec<(String, String, Option<String>)>,
    pub checkpoints: Vec<CheckpointRow>,
    pub folder: std::path::PathBuf,
}

/// Reads what the page of run `id` shows; `None` if the registry has no such run.
pub fn build(registry: &Registry, id: &str, runs_dir: &Path) -> Result<Option<RunPage>> {
    let runs = registry.summaries(&RunFilter::run(id))?;
    if runs.is_empty() {
        return Ok(None);
    }
    let mut built = views::build_with(registry, &runs, |_, _| 2000)?;
    let Some(view) = built.pop() else {
        return Ok(None);
    };
    Ok(Some(RunPage {
        view,
        events: registry.events(id)?,
        checkpoints: registry.checkpoints(id)?,
        folder: RunDir::new(runs_dir, id).root,
    }))
}

fn fmt(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "-".into()
    }
}

/// The page body (the dashboard wraps it in its page).
pub fn render(page: &RunPage) -> Result<String> {
    let view = &page.view;
    let Some(run) = view.runs.first() else {
        return Ok(String::new());
    };
    let s = &run.summary;
    let mut out = format!(
        "<nav><a href=\"/\">all experiments</a> › <a href=\"{}\">{}</a></nav>\
         <h1>run {}</h1><p>{}</p>",
        experiment_href(&s.experiment),
        escape(&s.experiment),
        escape(&s.id),
        badge(s.status.as_str())
    );
    if let Some(e) = &s.error {
        let _ = write!(out, "<p class=\"err\">{}</p>", escape(e));
    }
    out += "<dl class=\"facts\">";
    let mut fact = |k: &str, v: String| {
        let _ = write!(out, "<dt>{k}</dt><dd>{v}</dd>");
    };
    if let Some(b) = s.best {
        fact(
            "best epoch",
            format!(
                "{} (test bpd8 {}, bpd {}, nll {})",
                b.epoch,
                fmt(b.bpd8, 4),
                fmt(b.bpd, 4),
                fmt(b.nll, 4)
            ),
        );
    }
    fact("device", escape(s.device.as_deref().unwrap_or("-")));
    fact("started", escape(s.started_at.as_deref().unwrap_or("-")));
    fact("finished", escape(s.finished_at.as_deref().unwrap_or("-")));
    fact("images/s", s.images_per_sec.map_or("-".into(), |v| fmt(v, 1)));
    fact("wall s", s.wall_seconds.map_or("-".into(), |v| fmt(v, 1)));
    fact(
        "folder",
        format!("<code>{}</code>", escape(&page.folder.display().to_string())),
    );
    fact(
        "best checkpoint",
        format!(
            "<code>{}</code>",
            escape(
                &s.checkpoint
                    .as_deref()
                    .map_or("-".into(), |c| page.folder.join(c).display().to_string())
            )
        ),
    );
    out += "</dl>";

    let charts = [
        super::charts::epoch_chart(view, (540, 300))?.map(|svg| ("Test bpd8 per epoch", svg)),
        super::charts::loss_chart(view, (540, 300))?
            .map(|svg| ("Training loss per step (smoothed; raw faint)", svg)),
    ];
    out += "<div class=\"charts\">";
    for (caption, svg) in charts.into_iter().flatten() {
        let _ = write!(
            out,
            "<figure class=\"chart\"><figcaption>{caption}</figcaption>{svg}</figure>"
        );
    }
    out += "</div>";

    if !run.sample_epochs.is_empty() {
        out += "<h3>Samples per epoch</h3><div class=\"samples\"><div class=\"row\">";
        let n = run.sample_epochs.len();
        let step = n.div_ceil(MAX_SAMPLES).max(1);
        let best = s.best.map(|b| b.epoch);
        for (k, &e) in run.sample_epochs.iter().enumerate() {
            if k % step != 0 && k + 1 != n && Some(e) != best {
                continue;
            }
            if let Some(src) = Images::Linked.src_for(&s.id, e) {
                let mark = if Some(e) == best { " (best)" } else { "" };
                let _ = write!(
                    out,
                    "<figure><figcaption>epoch {e}{mark}</figcaption><img alt=\"samples at epoch {e}\" src=\"{}\" \
                     loading=\"lazy\"></figure>",
                    escape(&src)
                );
            }
        }
        out += "</div></div>";
    }

    out += "<h3>Epochs</h3><table><thead><tr><th>epoch</th><th>train loss</th><th>test bpd</th>\
            <th>test bpd8</th></tr></thead><tbody>";
    let c = &s.curves;
    for i in 0..c.epochs.len() {
        let _ = write!(
            out,
            "<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            c.epochs[i],
            fmt(c.train_loss[i], 4),
            fmt(c.test_bpd[i], 4),
            fmt(c.test_bpd8[i], 4)
        );
    }
    out += "</tbody></table>";

    out += "<h3>Configuration</h3><table class=\"config\"><tbody>";
    for (k, _) in &s.params {
        let _ = write!(
            out,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(k),
            escape(&super::param_text(s, k))
        );
    }
    out += "</tbody></table>";

    out += "<h3>Checkpoints</h3>";
    if page.checkpoints.is_empty() {
        out += "<p class=\"muted\">none recorded</p>";
    } else {
        out += "<table><thead><tr><th>epoch</th><th>path</th><th>MiB</th><th>best</th></tr></thead><tbody>";
        for ck in &page.checkpoints {
            let _ = write!(
                out,
                "<tr><td class=\"num\">{}</td><td><code>{}</code></td><td class=\"num\">{:.2}</td><td>{}</td></tr>",
                ck.epoch,
                escape(&ck.path),
                ck.size as f64 / (1024.0 * 1024.0),
                if ck.is_best { "best" } else { "" }
            );
        }
        out += "</tbody></table>";
    }

    out +=
        "<h3>History</h3><table class=\"events\"><thead><tr><th>at</th><th>status</th><th>detail</th></tr>\
            </thead><tbody>";
    for (status, at, detail) in &page.events {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(at),
            badge(status),
            escape(detail.as_deref().unwrap_or(""))
        );
    }
    out += "</tbody></table>";
    Ok(out)
}
