//! The comparison charts, as inline SVG drawn by plotters: every run of an experiment on shared
//! axes (the curves here, the parameter charts in `param_charts`). The top runs get their palette colour (the same in every chart) and the best run a
//! thick line; all other runs are thin and grey, so hundreds of runs stay readable. Runs that
//! stopped early end where they stopped, with a marker for why (see [`end_marker`]).

use anyhow::Result;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::views::{Envelope, EnvelopePoint, ExperimentView, RunView, OTHER, TOP_N};
use crate::registry::RunStatus;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

pub(super) const FONT: &str = "sans-serif";

/// Draws with `draw` on a white `size` canvas and returns the SVG text.
pub(super) fn svg(size: (u32, u32), draw: impl FnOnce(&Area) -> Result<()>) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    Ok(out)
}

pub(super) fn rgb(c: (u8, u8, u8)) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

/// The line style of a run: the best thick, the top runs solid, the rest thin and faint.
pub(super) fn line_style(run: &RunView) -> ShapeStyle {
    let c = rgb(run.colour);
    if run.is_best() {
        c.stroke_width(3)
    } else if run.is_top() {
        c.stroke_width(2)
    } else {
        c.mix(0.45).stroke_width(1)
    }
}

/// The runs drawn one by one, top runs last (best on top) so they are not hidden under the grey
/// mass.
pub(super) fn draw_order(view: &ExperimentView) -> Vec<&RunView> {
    let mut runs: Vec<&RunView> = view.runs.iter().filter(|r| r.drawn).collect();
    runs.sort_by_key(|r| match r.rank {
        Some(k) if k < TOP_N => (1, TOP_N - k),
        _ => (0, 0),
    });
    runs
}

/// The axis range of `values`, capped above so that a few outliers (first steps, a diverging
/// run) do not flatten the runs being compared; values beyond it are drawn on the edge.
pub fn value_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let (lo, hi) = (v[0], v[v.len() - 1]);
    // Only with enough values for a 90th percentile to mean something, and only far outliers.
    let q90 = v[(v.len() - 1) * 9 / 10];
    let cap = q90 + (q90 - lo) * 3.0;
    let hi = if v.len() >= 10 && cap > lo {
        hi.min(cap)
    } else {
        hi
    };
    let pad = ((hi - lo) * 0.06).max(hi.abs() * 1e-3).max(1e-6);
    Some((lo - pad, hi + pad))
}

fn clamp_y(points: &[(f64, f64)], (lo, hi): (f64, f64)) -> Vec<(f64, f64)> {
    points.iter().map(|&(x, y)| (x, y.clamp(lo, hi))).collect()
}

/// Short, readable numbers for tick labels.
pub fn fmt_num(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let a = x.abs();
    if !(1e-3..1e5).contains(&a) {
        return format!("{x:.1e}");
    }
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_owned()
}

/// What a run's curve ends with, when it did not end as planned (or has not ended yet).
pub enum EndMarker {
    /// failed or diverged: a cross.
    Stopped,
    /// pruned by early stopping: a triangle.
    Pruned,
    /// still running (or interrupted, to be resumed): a hollow circle.
    Open,
}

/// The marker for a run's status; statuses are strings so that new ones still render.
pub fn end_marker(status: RunStatus) -> Option<EndMarker> {
    match status {
        RunStatus::Failed | RunStatus::Diverged => Some(EndMarker::Stopped),
        RunStatus::Pruned => Some(EndMarker::Pruned),
        RunStatus::Running | RunStatus::Interrupted => Some(EndMarker::Open),
        RunStatus::Queued | RunStatus::Completed => None,
    }
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Runs whose end markers are labelled with their status: the top runs, or every run of a small
/// experiment.
fn labelled(view: &ExperimentView, run: &RunView) -> bool {
    run.is_top() || view.run_count() <= 20
}

/// Failed or diverged runs without a test result have no palette colour; their marker is red
/// rather than the grey of the crowd.
const STOPPED: (u8, u8, u8) = (176, 0, 0);

/// Draws `run`'s end marker at `at`, with its status as text if `label`.
fn draw_end(chart: &mut Chart, run: &RunView, at: (f64, f64), label: bool) -> Result<()> {
    let Some(marker) = end_marker(run.summary.status) else {
        return Ok(());
    };
    let c = match marker {
        EndMarker::Stopped if run.rank.is_none() => rgb(STOPPED),
        _ => rgb(run.colour),
    };
    let size = if run.is_top() { 6 } else { 4 };
    match marker {
        EndMarker::Stopped => chart.draw_series(std::iter::once(Cross::new(at, size, c.stroke_width(2))))?,
        EndMarker::Pruned => chart.draw_series(std::iter::once(TriangleMarker::new(at, size, c.filled())))?,
        EndMarker::Open => chart.draw_series(std::iter::once(Circle::new(at, size, c.stroke_width(2))))?,
    };
    if label {
        let style = TextStyle::from((FONT, 12).into_font()).color(&c);
        let label = EmptyElement::at(at) + Text::new(run.summary.status.as_str(), (7, -16), style);
        chart.draw_series(std::iter::once(label))?;
    }
    Ok(())
}

/// The runs with their own line on a curve chart: every drawn run of a small experiment, only
/// the top runs of a summarised one (the others are in its envelope).
fn curve_runs(view: &ExperimentView) -> Vec<&RunView> {
    draw_order(view)
        .into_iter()
        .filter(|r| !view.summarised() || r.is_top())
        .collect()
}

/// The values an envelope adds to a chart's range (its 10-90% band: the extremes may be far).
fn envelope_values(env: Option<&Envelope>) -> impl Iterator<Item = f64> + '_ {
    env.into_iter()
        .flat_map(|e| e.points.iter().flat_map(|p| [p.q10, p.q90]))
}

/// Draws `env` under the curves: min to max faint, 10% to 90% darker, the median as a line.
fn draw_envelope(chart: &mut Chart, env: &Envelope, (lo, hi): (f64, f64)) -> Result<()> {
    let band = |low: fn(&EnvelopePoint) -> f64, high: fn(&EnvelopePoint) -> f64| -> Vec<(f64, f64)> {
        let mut pts: Vec<(f64, f64)> = env.points.iter().map(|p| (p.x, high(p).clamp(lo, hi))).collect();
        pts.extend(env.points.iter().rev().map(|p| (p.x, low(p).clamp(lo, hi))));
        pts
    };
    let grey = rgb(OTHER);
    chart.draw_series(std::iter::once(Polygon::new(
        band(|p| p.min, |p| p.max),
        grey.mix(0.25).filled(),
    )))?;
    chart.draw_series(std::iter::once(Polygon::new(
        band(|p| p.q10, |p| p.q90),
        grey.mix(0.55).filled(),
    )))?;
    let median: Vec<(f64, f64)> = env.points.iter().map(|p| (p.x, p.median.clamp(lo, hi))).collect();
    chart.draw_series(LineSeries::new(median, RGBColor(110, 110, 110).stroke_width(1)))?;
    Ok(())
}

fn epoch_points(run: &RunView) -> Vec<(f64, f64)> {
    let c = &run.summary.curves;
    c.epochs
        .iter()
        .zip(&c.test_bpd8)
        .filter(|(_, y)| y.is_finite())
        .map(|(&e, &y)| (e as f64, y))
        .collect()
}

/// Test bpd8 per epoch of every run; `None` when no run has a test result yet.
pub fn epoch_chart(view: &ExperimentView, size: (u32, u32)) -> Result<Option<String>> {
    let series: Vec<(&RunView, Vec<(f64, f64)>)> = curve_runs(view)
        .into_iter()
        .map(|r| (r, epoch_points(r)))
        .collect();
    let env = view.epoch_envelope.as_ref();
    let values = series.iter().flat_map(|(_, p)| p.iter().map(|q| q.1));
    let Some(y) = value_range(values.chain(envelope_values(env))) else {
        return Ok(None);
    };
    let max_epoch = series
        .iter()
        .flat_map(|(_, p)| p.last().map(|q| q.0))
        .chain(env.and_then(|e| e.points.last().map(|p| p.x)))
        .fold(1.0, f64::max);
    let pad = ((max_epoch - 1.0) * 0.04).max(0.5);
    let few_epochs = max_epoch <= 30.0;
    svg(size, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(34)
            .y_label_area_size(52)
            .build_cartesian_2d((1.0 - pad)..(max_epoch + pad), y.0..y.1)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("test bpd8")
            .x_labels((max_epoch as usize + 1).min(12))
            .x_label_formatter(&|x| {
                if (x - x.round()).abs() < 1e-6 {
                    format!("{}", x.round())
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|v| fmt_num(*v))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()?;
        if let Some(env) = env {
            draw_envelope(&mut chart, env, y)?;
        }
        for (run, points) in &series {
            if points.is_empty() {
                continue;
            }
            let pts = clamp_y(points, y);
            chart.draw_series(LineSeries::new(pts.clone(), line_style(run)))?;
            // Dots too where there are few epochs, so that a one-epoch run still shows.
            if few_epochs && (run.is_top() || pts.len() == 1) {
                let r = if run.is_top() { 3 } else { 2 };
                let c = rgb(run.colour);
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, r, c.filled())))?;
            }
            if let Some(&last) = pts.last() {
                draw_end(&mut chart, run, last, labelled(view, run))?;
            }
        }
        Ok(())
    })
    .map(Some)
}

/// Exponential moving average with TensorBoard's bias correction; its time constant is 5% of
/// the series, so that runs of any length smooth alike.
pub fn smooth(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    if points.len() < 3 {
        return points.to_vec();
    }
    let tau = (points.len() as f64 * 0.05).max(1.0);
    let keep = (-1.0 / tau).exp();
    let (mut acc, mut norm) = (0.0, 0.0);
    points
        .iter()
        .map(|&(x, y)| {
            acc = acc * keep + (1.0 - keep) * y;
            norm = norm * keep + (1.0 - keep);
            (x, acc / norm)
        })
        .collect()
}

/// Training loss per step of every run: smoothed, with the raw values faint behind the top runs.
pub fn loss_chart(view: &ExperimentView, size: (u32, u32)) -> Result<Option<String>> {
    let series: Vec<(&RunView, Vec<(f64, f64)>)> = curve_runs(view)
        .into_iter()
        .map(|r| (r, decimate(&smooth(&r.loss.points), size.0)))
        .collect();
    let env = view.loss_envelope.as_ref();
    let raw_values = view
        .runs
        .iter()
        .filter(|r| r.is_top())
        .flat_map(|r| r.loss.points.iter().map(|p| p.1));
    let smooth_values = series.iter().flat_map(|(_, p)| p.iter().map(|q| q.1));
    let Some(y) = value_range(raw_values.chain(smooth_values).chain(envelope_values(env))) else {
        return Ok(None);
    };
    let max_step = view
        .runs
        .iter()
        .filter_map(|r| r.loss.last_step)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    svg(size, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(34)
            .y_label_area_size(52)
            .build_cartesian_2d(0.0..max_step * 1.02, y.0..y.1)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("train loss (nats)")
            .x_label_formatter(&|v| fmt_num(*v))
            .y_label_formatter(&|v| fmt_num(*v))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()?;
        if let Some(env) = env {
            draw_envelope(&mut chart, env, y)?;
        }
        for (run, _) in &series {
            if run.is_top() && run.loss.points.len() > 2 {
                let faint = rgb(run.colour).mix(0.3).stroke_width(1);
                let raw = decimate(&run.loss.points, size.0);
                chart.draw_series(LineSeries::new(clamp_y(&raw, y), faint))?;
            }
        }
        for (run, points) in &series {
            let pts = clamp_y(points, y);
            if !pts.is_empty() {
                chart.draw_series(LineSeries::new(pts.clone(), line_style(run)))?;
            }
            if pts.len() == 1 {
                chart.draw_series(std::iter::once(Circle::new(pts[0], 3, rgb(run.colour).filled())))?;
            }
            // A run whose loss went infinite or NaN ends at its last step, on the top edge.
            let last_finite = pts.last().map_or(f64::NEG_INFINITY, |p| p.0);
            match run.loss.last_step.map(|s| s as f64) {
                Some(stop) if stop > last_finite => {
                    draw_end(&mut chart, run, (stop, y.1), labelled(view, run))?;
                }
                _ => {
                    if let Some(&last) = pts.last() {
                        draw_end(&mut chart, run, last, labelled(view, run))?;
                    }
                }
            }
        }
        Ok(())
    })
    .map(Some)
}

/// At most two points (the lowest and the highest) per horizontal pixel of a chart `width`
/// wide, in x order: a line through more points than pixels draws the same, only larger.
pub fn decimate(points: &[(f64, f64)], width: u32) -> Vec<(f64, f64)> {
    let columns = width.max(1) as usize;
    if points.len() <= 2 * columns {
        return points.to_vec();
    }
    let (x0, x1) = (points[0].0, points[points.len() - 1].0);
    let span = (x1 - x0).max(f64::MIN_POSITIVE);
    let column = |x: f64| (((x - x0) / span) * (columns - 1) as f64) as usize;
    let mut out = Vec::with_capacity(2 * columns);
    for group in points.chunk_by(|a, b| column(a.0) == column(b.0)) {
        let lo = group.iter().min_by(|a, b| a.1.total_cmp(&b.1)).copied();
        let hi = group.iter().max_by(|a, b| a.1.total_cmp(&b.1)).copied();
        if let (Some(lo), Some(hi)) = (lo, hi) {
            // Kept in x order so the line still runs left to right.
            if lo.0 <= hi.0 {
                out.extend([lo, hi]);
            } else {
                out.extend([hi, lo]);
            }
            if lo == hi {
                out.pop();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimation_keeps_each_pixel_column_extremes_and_short_series_whole() {
        let pts: Vec<(f64, f64)> = (0..10_000).map(|i| (i as f64, (i % 7) as f64)).collect();
        let d = decimate(&pts, 100);
        assert!(d.len() <= 200, "{}", d.len());
        assert!(d.windows(2).all(|w| w[0].0 <= w[1].0), "in x order");
        assert_eq!(d.iter().map(|p| p.1).fold(f64::MIN, f64::max), 6.0);
        assert_eq!(d.iter().map(|p| p.1).fold(f64::MAX, f64::min), 0.0);
        let short: Vec<(f64, f64)> = (0..50).map(|i| (i as f64, 1.0)).collect();
        assert_eq!(decimate(&short, 100), short);
    }

    #[test]
    fn the_range_ignores_a_far_outlier_but_keeps_the_spread() {
        let mut v: Vec<f64> = (0..50).map(|i| 1.0 + i as f64 * 0.01).collect();
        v.push(100.0);
        let (lo, hi) = value_range(v.into_iter()).unwrap();
        assert!(lo < 1.0 && hi > 1.49 && hi < 3.0, "{lo} {hi}");
    }

    #[test]
    fn smoothing_is_unbiased_at_the_start_and_follows_a_constant() {
        let pts: Vec<(f64, f64)> = (0..100).map(|i| (i as f64, 2.0)).collect();
        assert!(smooth(&pts).iter().all(|p| (p.1 - 2.0).abs() < 1e-12));
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_num(0.002), "0.002");
        assert_eq!(fmt_num(1.2500), "1.25");
        assert_eq!(fmt_num(0.0005), "5.0e-4");
        assert_eq!(fmt_num(0.0025), "0.0025");
        assert_eq!(fmt_num(30.0), "30");
    }
}
