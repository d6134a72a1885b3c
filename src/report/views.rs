//! What the comparison views show, gathered once: runs grouped by experiment, ranked by test
//! bpd8, each with its colour, its downsampled training loss and its recorded sample epochs, and
//! the experiment's swept parameters. The HTML report and the dashboard render the same views.

use std::collections::HashMap;

use anyhow::Result;

pub use super::envelope::{Envelope, EnvelopePoint};
use super::params::swept_params;
pub use super::params::{ParamInfo, ParamKind};
use crate::registry::views::StepSeries;
use crate::registry::{Registry, RunStatus, RunSummary};

/// Runs that get their own colour and a legend entry; the rest are drawn thin and grey so that
/// charts of hundreds of runs stay readable.
pub const TOP_N: usize = 10;

/// Colours of the top runs, best first (Tableau 10, with its grey swapped for cyan so that no
/// top run looks like the grey of the others).
const PALETTE: [(u8, u8, u8); TOP_N] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (188, 189, 34),
    (23, 190, 207),
    (64, 64, 64),
];

/// The colour of runs outside the top N.
pub const OTHER: (u8, u8, u8) = (175, 175, 175);

/// Experiments up to this many runs are drawn in full: every run its own line and point. Larger
/// ones are summarised (see [`ExperimentView::summarised`]).
pub const FULL_DETAIL_RUNS: usize = 50;

/// Runs besides the top N that a summarised experiment draws one by one (parameter charts) and
/// reads the training loss of (the loss envelope): evenly spaced by rank, so the sample spans
/// the best to the worst.
pub const SAMPLED_OTHERS: usize = 200;

/// One run as the views show it.
#[derive(Debug, Clone)]
pub struct RunView {
    pub summary: RunSummary,
    /// 0 for the best run by test bpd8; `None` for runs without a test result yet (and, in an
    /// experiment read at scale, for rows of a table page outside the runs read by rank).
    pub rank: Option<usize>,
    pub colour: (u8, u8, u8),
    pub loss: StepSeries,
    pub sample_epochs: Vec<u32>,
    /// Drawn one by one in the charts: always in a small experiment; in a summarised one, the
    /// top runs and the evenly spaced sample of the others.
    pub drawn: bool,
}

impl RunView {
    pub fn is_top(&self) -> bool {
        self.rank.is_some_and(|r| r < TOP_N)
    }
    pub fn is_best(&self) -> bool {
        self.rank == Some(0)
    }
    pub fn bpd8(&self) -> Option<f64> {
        self.summary.best.map(|b| b.bpd8).filter(|v| v.is_finite())
    }
}

/// All runs of one experiment, in the order they were given (the table's order).
#[derive(Debug, Clone)]
pub struct ExperimentView {
    pub name: String,
    pub description: String,
    pub runs: Vec<RunView>,
    pub params: Vec<ParamInfo>,
    /// Test bpd8 per epoch of every run outside the top N, as quantiles (summarised views only).
    pub epoch_envelope: Option<Envelope>,
    /// Training loss per step of the sampled runs outside the top N, as quantiles (summarised
    /// views only).
    pub loss_envelope: Option<Envelope>,
    /// Set when the experiment was read at scale: `runs` then holds only the runs shown (see
    /// `super::scaled`), and this the counts of all of them.
    pub at_scale: Option<AtScale>,
}

/// What a large experiment's view holds in place of every run: counts from SQL, and which of
/// the runs it read stand for the rest and make up the table.
#[derive(Debug, Clone)]
pub struct AtScale {
    /// Runs in the experiment.
    pub total: usize,
    /// Of them, runs with a test result (ranked).
    pub ranked: usize,
    /// Runs per state.
    pub counts: Vec<(RunStatus, usize)>,
    /// Indices into `runs` of the ranked runs evenly spaced by rank (the best and the worst
    /// included) that the epoch envelope and the importance table stand on.
    pub sample: Vec<usize>,
    /// Indices into `runs` of the table's rows, in order.
    pub table: Vec<usize>,
    /// The table's page (0-based) when it is one page of the runs sorted on the server.
    pub page: Option<usize>,
}

impl ExperimentView {
    /// Indices of the runs in rank order, best first; runs without a result are left out.
    pub fn ranked(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.runs.len())
            .filter(|&i| self.runs[i].rank.is_some())
            .collect();
        idx.sort_by_key(|&i| self.runs[i].rank);
        idx
    }

    /// Whether this experiment is too large to draw every run: its charts then show the top
    /// runs, a sample of the others and envelopes of the rest.
    pub fn summarised(&self) -> bool {
        self.at_scale.is_some() || self.runs.len() > FULL_DETAIL_RUNS
    }

    /// Runs in the experiment (more than `runs` holds when it was read at scale).
    pub fn run_count(&self) -> usize {
        self.at_scale.as_ref().map_or(self.runs.len(), |s| s.total)
    }

    /// Runs with a test result.
    pub fn ranked_count(&self) -> usize {
        match &self.at_scale {
            Some(s) => s.ranked,
            None => self.runs.iter().filter(|r| r.rank.is_some()).count(),
        }
    }

    /// The runs that stand for the experiment in its envelope and importance table: all of
    /// them, or the rank-spaced sample of an experiment read at scale.
    pub fn stand_ins(&self) -> Vec<&RunView> {
        match &self.at_scale {
            Some(s) => s.sample.iter().map(|&i| &self.runs[i]).collect(),
            None => self.runs.iter().collect(),
        }
    }

    /// How many runs are in each state, in a fixed order of states.
    pub fn status_counts(&self) -> Vec<(RunStatus, usize)> {
        let mut counts: Vec<(RunStatus, usize)> = match &self.at_scale {
            Some(s) => s.counts.clone(),
            None => {
                let mut counts: Vec<(RunStatus, usize)> = Vec::new();
                for r in &self.runs {
                    match counts.iter_mut().find(|(s, _)| *s == r.summary.status) {
                        Some((_, n)) => *n += 1,
                        None => counts.push((r.summary.status, 1)),
                    }
                }
                counts
            }
        };
        counts.sort_by_key(|(s, _)| status_order(*s));
        counts
    }
}

fn status_order(status: RunStatus) -> usize {
    const ORDER: [RunStatus; 7] = [
        RunStatus::Running,
        RunStatus::Queued,
        RunStatus::Completed,
        RunStatus::Pruned,
        RunStatus::Diverged,
        RunStatus::Failed,
        RunStatus::Interrupted,
    ];
    ORDER.iter().position(|s| *s == status).unwrap_or(ORDER.len())
}

/// How many loss points a run's curve gets: the top runs full detail, the others fewer as the
/// experiment grows, so a chart of 1,000 runs stays a few hundred KiB.
pub fn loss_points(run_count: usize, top: bool) -> usize {
    if top {
        400
    } else {
        (40_000 / run_count.max(1)).clamp(30, 400)
    }
}

/// Builds the views of `runs` (any order, any mix of experiments), reading loss series and
/// sample epochs from `registry`. Experiments come in name order.
pub fn build(registry: &Registry, runs: &[RunSummary]) -> Result<Vec<ExperimentView>> {
    build_owned(registry, runs.to_vec(), loss_points)
}

/// [`build`] over summaries the caller no longer needs (they move into the views instead of
/// being copied: 100,000 summaries are a noticeable copy), with `points(runs in the experiment,
/// is a top run)` loss points per run.
pub fn build_owned(
    registry: &Registry,
    runs: Vec<RunSummary>,
    points: impl Fn(usize, bool) -> usize,
) -> Result<Vec<ExperimentView>> {
    let descriptions = registry.experiment_descriptions()?;
    let mut by_experiment: std::collections::BTreeMap<String, Vec<RunSummary>> = Default::default();
    for run in runs {
        by_experiment.entry(run.experiment.clone()).or_default().push(run);
    }
    by_experiment
        .into_iter()
        .map(|(name, mine)| {
            let description = descriptions.get(&name).cloned().unwrap_or_default();
            experiment_view(registry, name, description, mine, &points)
        })
        .collect()
}

/// The view of one experiment's runs (in the order given).
fn experiment_view(
    registry: &Registry,
    name: String,
    description: String,
    mine: Vec<RunSummary>,
    points: &impl Fn(usize, bool) -> usize,
) -> Result<ExperimentView> {
    let refs: Vec<&RunSummary> = mine.iter().collect();
    let ranks = rank(&refs);
    let params = swept_params(&refs);
    let drawn = drawn_runs(&ranks);
    let n = mine.len();
    let mut view = assemble(registry, (name, description), mine, ranks, drawn, |top| {
        points(n, top)
    })?;
    view.params = params;
    if view.summarised() {
        view.epoch_envelope = epoch_envelope(&view);
        view.loss_envelope = loss_envelope(&view);
    }
    Ok(view)
}

/// The view of `mine` with their ranks and whether each is drawn, reading the per-step loss
/// (`points(is a top run)` points) and sample epochs of the drawn runs only: the query count
/// stays bounded however large the experiment. Parameters and envelopes are left to the caller.
pub(super) fn assemble(
    registry: &Registry,
    (name, description): (String, String),
    mine: Vec<RunSummary>,
    ranks: Vec<Option<usize>>,
    drawn: Vec<bool>,
    points: impl Fn(bool) -> usize,
) -> Result<ExperimentView> {
    let ids: Vec<&str> = mine
        .iter()
        .zip(&drawn)
        .filter(|(_, d)| **d)
        .map(|(r, _)| r.id.as_str())
        .collect();
    let top: HashMap<&str, bool> = mine
        .iter()
        .zip(&ranks)
        .filter(|(_, r)| r.is_some_and(|r| r < TOP_N))
        .map(|(run, _)| (run.id.as_str(), true))
        .collect();
    let mut loss = registry.train_loss_series(&ids, |id| points(top.contains_key(id)))?;
    let mut samples = registry.sample_epochs_of(&ids)?;
    let runs = mine
        .into_iter()
        .zip(ranks)
        .zip(drawn)
        .map(|((summary, rank), drawn)| RunView {
            colour: rank.and_then(|k| PALETTE.get(k).copied()).unwrap_or(OTHER),
            rank,
            loss: loss.remove(&summary.id).unwrap_or_default(),
            sample_epochs: samples.remove(&summary.id).unwrap_or_default(),
            summary,
            drawn,
        })
        .collect::<Vec<_>>();
    Ok(ExperimentView {
        name,
        description,
        runs,
        params: Vec::new(),
        epoch_envelope: None,
        loss_envelope: None,
        at_scale: None,
    })
}

/// Which runs are drawn one by one: all of a small experiment; of a large one, the top runs,
/// [`SAMPLED_OTHERS`] ranked runs evenly spaced from the best to the worst, and none of those
/// without a result (they have nothing to plot).
fn drawn_runs(ranks: &[Option<usize>]) -> Vec<bool> {
    if ranks.len() <= FULL_DETAIL_RUNS {
        return vec![true; ranks.len()];
    }
    let ranked = ranks.iter().flatten().count();
    let others = ranked.saturating_sub(TOP_N);
    let every = others.div_ceil(SAMPLED_OTHERS).max(1);
    ranks
        .iter()
        .map(|r| r.is_some_and(|k| k < TOP_N || (k - TOP_N).is_multiple_of(every) || k + 1 == ranked))
        .collect()
}

/// Per epoch, the spread of test bpd8 over every run outside the top N (of an experiment read
/// at scale, over its rank-spaced sample).
pub(super) fn epoch_envelope(view: &ExperimentView) -> Option<Envelope> {
    let others: Vec<&RunView> = view.stand_ins().into_iter().filter(|r| !r.is_top()).collect();
    let samples = others.iter().flat_map(|r| {
        let c = &r.summary.curves;
        c.epochs.iter().zip(&c.test_bpd8).map(|(&e, &v)| (e as f64, v))
    });
    Envelope::of(others.len(), samples)
}

/// Steps are grouped into this many bins for the loss envelope.
const LOSS_BINS: usize = 80;

/// Per bin of steps, the spread of the training loss over the sampled runs outside the top N
/// (each run counted once per bin, by its mean there).
pub(super) fn loss_envelope(view: &ExperimentView) -> Option<Envelope> {
    let sampled: Vec<&RunView> = view
        .runs
        .iter()
        .filter(|r| r.drawn && !r.is_top() && !r.loss.points.is_empty())
        .collect();
    let max_step = sampled.iter().filter_map(|r| r.loss.last_step).max()?.max(1) as f64;
    let width = max_step / LOSS_BINS as f64;
    let mut samples = Vec::new();
    for r in &sampled {
        let mut bins: HashMap<usize, (f64, usize)> = HashMap::new();
        for &(x, y) in &r.loss.points {
            let b = ((x / width) as usize).min(LOSS_BINS - 1);
            let e = bins.entry(b).or_insert((0.0, 0));
            e.0 += y;
            e.1 += 1;
        }
        samples.extend(
            bins.into_iter()
                .map(|(b, (sum, n))| ((b as f64 + 0.5) * width, sum / n as f64)),
        );
    }
    Envelope::of(sampled.len(), samples)
}

/// Rank of each run by test bpd8 (ties by bpd, then by id so the order is stable).
fn rank(runs: &[&RunSummary]) -> Vec<Option<usize>> {
    let mut scored: Vec<(usize, f64, f64)> = runs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let b = r.best?;
            b.bpd8.is_finite().then_some((i, b.bpd8, b.bpd))
        })
        .collect();
    scored.sort_by(|a, b| {
        a.1.total_cmp(&b.1)
            .then(a.2.total_cmp(&b.2))
            .then_with(|| runs[a.0].id.cmp(&runs[b.0].id))
    });
    let mut out = vec![None; runs.len()];
    for (k, (i, ..)) in scored.into_iter().enumerate() {
        out[i] = Some(k);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::registry::views::{BestEpoch, Curves};

    pub(crate) fn summary(id: &str, bpd8: Option<f64>, params: serde_json::Value) -> RunSummary {
        RunSummary {
            id: id.into(),
            experiment: "e".into(),
            status: RunStatus::Completed,
            method: "grid".into(),
            trial: None,
            device: None,
            precision_used: None,
            params: params.as_object().cloned().unwrap_or_default(),
            best: bpd8.map(|v| BestEpoch {
                epoch: 1,
                bpd8: v,
                bpd: v,
                nll: v,
            }),
            images_per_sec: None,
            wall_seconds: None,
            checkpoint: None,
            samples: None,
            error: None,
            started_at: None,
            finished_at: None,
            progress: None,
            process_gone: false,
            job: None,
            journal_offset: 0,
            curves: Curves::default(),
        }
    }

    #[test]
    fn ranks_by_bpd8_and_leaves_runs_without_results_unranked() {
        let a = summary("a", Some(2.0), serde_json::json!({}));
        let b = summary("b", None, serde_json::json!({}));
        let c = summary("c", Some(1.0), serde_json::json!({}));
        assert_eq!(rank(&[&a, &b, &c]), vec![Some(1), None, Some(0)]);
    }

    #[test]
    fn learning_rates_are_log_scaled_and_strings_are_categories() {
        let a = summary(
            "a",
            None,
            serde_json::json!({"learning_rate": 1e-3, "lr_schedule": "cosine"}),
        );
        let b = summary(
            "b",
            None,
            serde_json::json!({"learning_rate": 2e-3, "lr_schedule": "constant"}),
        );
        let p = swept_params(&[&a, &b]);
        assert_eq!(p[0].key, "learning_rate");
        assert_eq!(p[0].kind, ParamKind::Numeric { log: true });
        assert_eq!(
            p[1].kind,
            ParamKind::Categorical(vec!["constant".into(), "cosine".into()])
        );
        assert_eq!(p[1].position(&a), Some(1.0));
    }
}
