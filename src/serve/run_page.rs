//! One run in full, for the dashboard's `/runs/<id>` (`templates/serve/run.html`): facts,
//! configuration, curves, samples per epoch, checkpoints and state history.

use std::path::{Path, PathBuf};

use anyhow::Result;
use askama::Template;

use super::links::{experiment_href, Dashboard};
use crate::registry::views::CheckpointRow;
use crate::registry::{Registry, RunFilter, RunSummary};
use crate::report::markup::{fmt_opt, Figure, Links};
use crate::report::views::{self, ExperimentView, RunView};
use crate::report::{charts, param_text};
use crate::run_dir::RunDir;

/// Most sample grids shown on a run page (evenly picked when a run recorded more).
const MAX_SAMPLES: usize = 40;

pub struct RunPage {
    /// The run alone, as a one-run experiment view (for its curves and colours).
    pub view: ExperimentView,
    pub events: Vec<(String, String, Option<String>)>,
    pub checkpoints: Vec<CheckpointRow>,
    pub folder: PathBuf,
}

/// Reads what the page of run `id` shows; `None` if the registry has no such run.
pub fn build(registry: &Registry, id: &str, runs_dir: &Path) -> Result<Option<RunPage>> {
    let runs = registry.summaries(&RunFilter::run(id))?;
    if runs.is_empty() {
        return Ok(None);
    }
    let mut built = views::build_owned(registry, runs, |_, _| 2000)?;
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

#[derive(Template)]
#[template(path = "serve/run.html")]
struct RunTemplate<'a> {
    run: &'a RunSummary,
    experiment_href: String,
    facts: Vec<Fact>,
    charts: Vec<Figure>,
    samples: Vec<Sample>,
    /// Per epoch: the epoch, train loss, test bpd and test bpd8.
    epochs: Vec<(u32, String, String, String)>,
    config: Vec<(&'a str, String)>,
    checkpoints: Vec<Checkpoint<'a>>,
    events: &'a [(String, String, Option<String>)],
}

struct Fact {
    key: &'static str,
    value: String,
    /// Shown as code (paths).
    code: bool,
}

struct Sample {
    epoch: u32,
    best: bool,
    src: String,
}

struct Checkpoint<'a> {
    epoch: u32,
    path: &'a str,
    mib: String,
    best: bool,
}

fn fmt(v: f64, digits: usize) -> String {
    fmt_opt(Some(v), digits)
}

fn facts(s: &RunSummary, folder: &Path) -> Vec<Fact> {
    let fact = |key, value: String| Fact {
        key,
        value,
        code: false,
    };
    let mut out = Vec::new();
    if let Some(b) = s.best {
        out.push(fact(
            "best epoch",
            format!(
                "{} (test bpd8 {}, bpd {}, nll {})",
                b.epoch,
                fmt(b.bpd8, 4),
                fmt(b.bpd, 4),
                fmt(b.nll, 4)
            ),
        ));
    }
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    out.push(fact("device", text(&s.device)));
    // What it trained in (`auto` resolved); its `precision` parameter is what it asked.
    out.push(fact("precision used", text(&s.precision_used)));
    out.push(fact("started", text(&s.started_at)));
    out.push(fact("finished", text(&s.finished_at)));
    out.push(fact("images/s", fmt_opt(s.images_per_sec, 1)));
    out.push(fact("wall s", fmt_opt(s.wall_seconds, 1)));
    let checkpoint = s
        .checkpoint
        .as_deref()
        .map_or("-".into(), |c| folder.join(c).display().to_string());
    for (key, value) in [
        ("folder", folder.display().to_string()),
        ("best checkpoint", checkpoint),
    ] {
        out.push(Fact {
            key,
            value,
            code: true,
        });
    }
    out
}

/// The run's sample grids, at most [`MAX_SAMPLES`] evenly picked, the last and the best kept.
fn samples(run: &RunView) -> Vec<Sample> {
    let n = run.sample_epochs.len();
    let step = n.div_ceil(MAX_SAMPLES).max(1);
    let best = run.summary.best.map(|b| b.epoch);
    run.sample_epochs
        .iter()
        .enumerate()
        .filter(|&(k, &e)| k % step == 0 || k + 1 == n || Some(e) == best)
        .filter_map(|(_, &epoch)| {
            Some(Sample {
                epoch,
                best: Some(epoch) == best,
                src: Dashboard.sample(&run.summary.id, epoch)?,
            })
        })
        .collect()
}

/// The page body (the dashboard wraps it in its page).
pub fn render(page: &RunPage) -> Result<String> {
    let view = &page.view;
    let Some(run) = view.runs.first() else {
        return Ok(String::new());
    };
    let s = &run.summary;
    let charts = vec![
        Figure::of(
            "Test bpd8 per epoch",
            charts::epoch_chart(view, (540, 300))?,
            "chart",
        ),
        Figure::of(
            "Training loss per step (smoothed; raw faint)",
            charts::loss_chart(view, (540, 300))?,
            "chart",
        ),
    ];
    let c = &s.curves;
    let epochs = (0..c.epochs.len())
        .map(|i| {
            let v = |series: &[f64]| fmt(series[i], 4);
            (c.epochs[i], v(&c.train_loss), v(&c.test_bpd), v(&c.test_bpd8))
        })
        .collect();
    let checkpoints = page
        .checkpoints
        .iter()
        .map(|ck| Checkpoint {
            epoch: ck.epoch,
            path: &ck.path,
            mib: format!("{:.2}", ck.size as f64 / (1024.0 * 1024.0)),
            best: ck.is_best,
        })
        .collect();
    let body = RunTemplate {
        run: s,
        experiment_href: experiment_href(&s.experiment),
        facts: facts(s, &page.folder),
        charts: charts.into_iter().flatten().collect(),
        samples: samples(run),
        epochs,
        config: s.params.keys().map(|k| (k.as_str(), param_text(s, k))).collect(),
        checkpoints,
        events: &page.events,
    };
    Ok(body.render()?)
}
