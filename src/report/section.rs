//! One experiment's section (`templates/report/section.html`): overlaid curves, the legend of
//! the top runs, parameter charts, importance, the best runs' samples and the runs table.

use anyhow::Result;
use askama::Template;

use super::importance::{self, ImportanceTable};
use super::markup::{fmt_opt, hex, Figure, Links};
use super::table::{self, TablePage};
use super::views::{ExperimentView, RunView, TOP_N};

/// Best runs whose sample grids are shown side by side.
const SAMPLE_RUNS: usize = 3;
/// Epochs per run in the sample comparison (first, last, best and evenly between).
const SAMPLE_EPOCHS: usize = 6;

#[derive(Template)]
#[template(path = "report/section.html")]
struct Section<'a> {
    index: usize,
    view: &'a ExperimentView,
    title_href: Option<String>,
    counts: Vec<(String, usize)>,
    curves: Vec<Figure>,
    top_n: usize,
    key: Option<SummaryKey>,
    legend: Vec<LegendEntry>,
    more_in_grey: usize,
    param_figures: Vec<Figure>,
    importance: Option<ImportanceTable>,
    samples: Vec<SampleRow>,
    /// The runs table, rendered by its own template.
    table: String,
}

/// What a summarised experiment's charts stand for, for the key under them.
struct SummaryKey {
    /// Runs in the grey band of the per-epoch chart.
    epoch_band: Option<usize>,
    /// Runs in the band of the loss chart.
    loss_band: Option<usize>,
    /// When the per-epoch band is drawn from a sample: how many runs it stands for.
    band_of: Option<usize>,
    /// Runs drawn in the parameter charts besides the top ones.
    sampled: usize,
}

struct LegendEntry {
    colour: String,
    id: String,
    href: Option<String>,
    status: String,
    bpd8: String,
    params: String,
}

struct SampleRow {
    colour: String,
    id: String,
    href: Option<String>,
    bpd8: String,
    figures: Vec<SampleFigure>,
}

pub(crate) struct SampleFigure {
    pub epoch: u32,
    pub best: bool,
    pub src: String,
}

/// One experiment: overlaid curves, parameter charts, importance, best samples, all runs.
pub fn experiment_section(view: &ExperimentView, index: usize, links: &dyn Links) -> Result<String> {
    experiment_section_paged(view, index, links, None)
}

/// [`experiment_section`]; with `page` (the dashboard), the table of a summarised experiment is
/// that page of runs, sorted on the server, rather than the report's first runs.
pub fn experiment_section_paged(
    view: &ExperimentView,
    index: usize,
    links: &dyn Links,
    page: Option<&TablePage>,
) -> Result<String> {
    let curves: Vec<Figure> = [
        Figure::of(
            "Test bpd8 per epoch",
            super::charts::epoch_chart(view, (600, 330))?,
            "chart epochs",
        ),
        Figure::of(
            "Training loss per step (smoothed; raw values faint)",
            super::charts::loss_chart(view, (600, 330))?,
            "chart steps",
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    let table = match page {
        Some(page) if view.summarised() => table::paged_table(view, page, links)?,
        _ => table::runs_table(view, index, links)?,
    };
    let ranked = view.ranked_count();
    let section = Section {
        index,
        view,
        title_href: links.experiment(&view.name),
        counts: view
            .status_counts()
            .into_iter()
            .map(|(s, n)| (s.as_str().to_owned(), n))
            .collect(),
        curves,
        top_n: TOP_N,
        key: summary_key(view),
        legend: legend(view, links),
        more_in_grey: ranked.saturating_sub(TOP_N),
        param_figures: param_figures(view)?,
        importance: (!view.params.is_empty())
            .then(|| importance::main_effects(view))
            .flatten(),
        samples: samples(view, links),
        table,
    };
    Ok(section.render()?)
}

fn param_figures(view: &ExperimentView) -> Result<Vec<Figure>> {
    let mut out = Vec::new();
    for p in &view.params {
        let svg = super::param_charts::param_chart(view, p, (360, 260))?;
        out.extend(Figure::of(
            format!("best test bpd8 by {}", p.key),
            svg,
            "chart param",
        ));
    }
    if !view.params.is_empty() {
        let svg = super::param_charts::parallel_chart(view)?;
        out.extend(Figure::of("Parameters → best test bpd8", svg, "chart parallel"));
    }
    Ok(out)
}

fn summary_key(view: &ExperimentView) -> Option<SummaryKey> {
    if !view.summarised() {
        return None;
    }
    let drawn = view.runs.iter().filter(|r| r.drawn).count();
    let epoch_band = view.epoch_envelope.as_ref().map(|e| e.runs);
    Some(SummaryKey {
        epoch_band,
        // The loss band is only described alongside the epoch band.
        loss_band: epoch_band.and(view.loss_envelope.as_ref().map(|e| e.runs)),
        sampled: drawn.saturating_sub(TOP_N.min(drawn)),
        band_of: view
            .at_scale
            .as_ref()
            .map(|s| s.ranked.saturating_sub(TOP_N))
            .filter(|&all| epoch_band.is_some_and(|band| band < all)),
    })
}

/// The top runs with their colours: the legend of every chart of the experiment.
fn legend(view: &ExperimentView, links: &dyn Links) -> Vec<LegendEntry> {
    let entry = |r: &RunView| {
        let params: Vec<String> = view
            .params
            .iter()
            .map(|p| format!("{}={}", p.key, super::param_text(&r.summary, &p.key)))
            .collect();
        LegendEntry {
            colour: hex(r.colour),
            id: r.summary.id.clone(),
            href: links.run(&r.summary.id),
            status: r.summary.status.as_str().to_owned(),
            bpd8: fmt_opt(r.bpd8(), 4),
            params: params.join(" "),
        }
    };
    view.ranked()
        .iter()
        .take(TOP_N)
        .map(|&i| entry(&view.runs[i]))
        .collect()
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

/// The sample grids of `run` at `epochs` that can be shown.
pub(crate) fn sample_figures(run: &RunView, epochs: &[u32], links: &dyn Links) -> Vec<SampleFigure> {
    let best = run.summary.best.map(|b| b.epoch);
    epochs
        .iter()
        .filter_map(|&epoch| {
            let src = links.sample(&run.summary.id, epoch)?;
            Some(SampleFigure {
                epoch,
                best: Some(epoch) == best,
                src,
            })
        })
        .collect()
}

/// Sample grids of the best runs side by side, per recorded epoch.
fn samples(view: &ExperimentView, links: &dyn Links) -> Vec<SampleRow> {
    let mut out = Vec::new();
    for &i in view.ranked().iter().take(SAMPLE_RUNS) {
        let r = &view.runs[i];
        if r.sample_epochs.is_empty() {
            continue;
        }
        let epochs = pick_epochs(&r.sample_epochs, r.summary.best.map(|b| b.epoch), SAMPLE_EPOCHS);
        let figures = sample_figures(r, &epochs, links);
        if figures.is_empty() {
            continue;
        }
        out.push(SampleRow {
            colour: hex(r.colour),
            id: r.summary.id.clone(),
            href: links.run(&r.summary.id),
            bpd8: fmt_opt(r.bpd8(), 4),
            figures,
        });
    }
    out
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
