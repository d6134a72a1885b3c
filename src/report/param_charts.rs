//! Parameter charts: best test bpd8 against each swept parameter, and parallel coordinates of
//! all swept parameters to best bpd8, in the same colours as the curves.

use anyhow::Result;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::charts::{draw_order, end_marker, fmt_num, line_style, rgb, svg, value_range, EndMarker, FONT};
use super::views::{ExperimentView, ParamInfo, ParamKind, RunView};

/// A small deterministic offset in [-0.2, 0.2] from a run id, to spread points of one category.
fn jitter(id: &str) -> f64 {
    let h = id
        .bytes()
        .fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619));
    (h % 1000) as f64 / 1000.0 * 0.4 - 0.2
}

fn axis_label(p: &ParamInfo) -> String {
    match p.kind {
        ParamKind::Numeric { log: true } => format!("{} (log scale)", p.key),
        _ => p.key.clone(),
    }
}

/// Tick text for a position on `p`'s axis.
fn tick(p: &ParamInfo, x: f64) -> String {
    match &p.kind {
        ParamKind::Numeric { log: true } => fmt_num(10f64.powf(x)),
        ParamKind::Numeric { log: false } => fmt_num(x),
        ParamKind::Categorical(values) => {
            if (x - x.round()).abs() < 1e-6 && x >= 0.0 {
                values.get(x.round() as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        }
    }
}

/// Best test bpd8 of each run against one swept parameter.
pub fn param_chart(view: &ExperimentView, p: &ParamInfo, size: (u32, u32)) -> Result<Option<String>> {
    let points: Vec<(&RunView, f64, f64)> = draw_order(view)
        .into_iter()
        .filter_map(|r| {
            let x = p.position(&r.summary)?;
            let x = if matches!(p.kind, ParamKind::Categorical(_)) {
                x + jitter(&r.summary.id)
            } else {
                x
            };
            Some((r, x, r.bpd8()?))
        })
        .collect();
    let Some(y) = value_range(points.iter().map(|q| q.2)) else {
        return Ok(None);
    };
    let (x_lo, x_hi) = match &p.kind {
        ParamKind::Categorical(values) => (-0.5, values.len() as f64 - 0.5),
        _ => {
            let (lo, hi) = points
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), q| {
                    (a.min(q.1), b.max(q.1))
                });
            let pad = ((hi - lo) * 0.08).max(if hi.abs() > 0.0 { hi.abs() * 0.05 } else { 0.5 });
            (lo - pad, hi + pad)
        }
    };
    svg(size, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(34)
            .y_label_area_size(52)
            .build_cartesian_2d(x_lo..x_hi, y.0..y.1)?;
        let n_labels = match &p.kind {
            ParamKind::Categorical(values) => values.len() * 2 + 1,
            _ => 6,
        };
        chart
            .configure_mesh()
            .x_desc(axis_label(p))
            .y_desc("best test bpd8")
            .x_labels(n_labels)
            .x_label_formatter(&|x| tick(p, *x))
            .y_label_formatter(&|v| fmt_num(*v))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()?;
        for (run, x, v) in &points {
            let at = (*x, v.clamp(y.0, y.1));
            let c = rgb(run.colour);
            let r = if run.is_best() {
                6
            } else if run.is_top() {
                4
            } else {
                2
            };
            match end_marker(run.summary.status) {
                Some(EndMarker::Stopped) => {
                    chart.draw_series(std::iter::once(Cross::new(at, r + 1, c.stroke_width(2))))?;
                }
                Some(EndMarker::Pruned) => {
                    chart.draw_series(std::iter::once(TriangleMarker::new(at, r + 1, c.filled())))?;
                }
                Some(EndMarker::Open) => {
                    chart.draw_series(std::iter::once(Circle::new(at, r, c.stroke_width(2))))?;
                }
                None => {
                    chart.draw_series(std::iter::once(Circle::new(at, r, c.filled())))?;
                }
            }
            if run.is_best() {
                chart.draw_series(std::iter::once(Circle::new(at, r + 2, BLACK.stroke_width(1))))?;
            }
        }
        Ok(())
    })
    .map(Some)
}

/// Parallel coordinates: one vertical axis per swept parameter and a last one for best test
/// bpd8; each run is a line across them in its colour.
pub fn parallel_chart(view: &ExperimentView) -> Result<Option<String>> {
    if view.params.is_empty() {
        return Ok(None);
    }
    let Some(y) = value_range(view.runs.iter().filter_map(|r| r.bpd8())) else {
        return Ok(None);
    };
    let spans = axis_spans(view);
    let lines: Vec<(&RunView, Vec<(f64, f64)>)> = draw_order(view)
        .into_iter()
        .filter_map(|r| {
            let bpd8 = r.bpd8()?;
            let mut pts = Vec::with_capacity(view.params.len() + 1);
            for (i, (p, span)) in view.params.iter().zip(&spans).enumerate() {
                pts.push((i as f64, norm(*span, p.position(&r.summary)?)));
            }
            pts.push((view.params.len() as f64, norm(y, bpd8.clamp(y.0, y.1))));
            Some((r, pts))
        })
        .collect();
    if lines.is_empty() {
        return Ok(None);
    }
    let axes = view.params.len() + 1;
    let width = (axes as u32 * 150).clamp(480, 1100);
    svg((width, 320), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .margin_left(70)
            .margin_right(70)
            .build_cartesian_2d(-0.1..(axes as f64 - 0.9), -0.16..1.08)?;
        let small = TextStyle::from((FONT, 11).into_font()).color(&RGBColor(90, 90, 90));
        let name_style = TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        for (i, (name, ticks)) in axis_list(view, &spans, y).into_iter().enumerate() {
            let x = i as f64;
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x, 0.0), (x, 1.0)],
                BLACK.stroke_width(1),
            )))?;
            chart.draw_series(std::iter::once(Text::new(name, (x, -0.07), name_style.clone())))?;
            for (at, text) in ticks {
                chart.draw_series(std::iter::once(Text::new(
                    text,
                    (x + 0.02, at + 0.02),
                    small.clone(),
                )))?;
            }
        }
        for (run, pts) in &lines {
            chart.draw_series(LineSeries::new(pts.clone(), line_style(run)))?;
        }
        Ok(())
    })
    .map(Some)
}

/// Each parameter axis spans its recorded values (log10 where log-scaled).
fn axis_spans(view: &ExperimentView) -> Vec<(f64, f64)> {
    view.params
        .iter()
        .map(|p| match &p.kind {
            ParamKind::Categorical(values) => (0.0, (values.len() as f64 - 1.0).max(1.0)),
            _ => view
                .runs
                .iter()
                .filter(|r| r.bpd8().is_some())
                .filter_map(|r| p.position(&r.summary))
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                    (a.min(x), b.max(x))
                }),
        })
        .collect()
}

/// `x` on an axis spanning `(lo, hi)`, as a height from 0 to 1.
fn norm((lo, hi): (f64, f64), x: f64) -> f64 {
    if hi > lo {
        (x - lo) / (hi - lo)
    } else {
        0.5
    }
}

/// (axis name, ticks at normalised heights) for each parameter, then for bpd8 over `y`.
fn axis_list(
    view: &ExperimentView,
    spans: &[(f64, f64)],
    y: (f64, f64),
) -> Vec<(String, Vec<(f64, String)>)> {
    let mut axes: Vec<(String, Vec<(f64, String)>)> = view
        .params
        .iter()
        .zip(spans)
        .map(|(p, span)| {
            let ticks = match &p.kind {
                ParamKind::Categorical(values) => values
                    .iter()
                    .enumerate()
                    .map(|(k, v)| (norm(*span, k as f64), v.clone()))
                    .collect(),
                _ => vec![(0.0, tick(p, span.0)), (1.0, tick(p, span.1))],
            };
            (axis_label(p), ticks)
        })
        .collect();
    axes.push((
        "best test bpd8".into(),
        vec![(0.0, fmt_num(y.0)), (1.0, fmt_num(y.1))],
    ));
    axes
}
