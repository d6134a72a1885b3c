//! `pixelx report --html`: one self-contained page (no external files or scripts) with the
//! comparison table, per-run curves as inline SVG drawn by plotters, and the sample grids
//! embedded as data URLs. Every string that came from a user or a file is escaped.

use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine;
use plotters::prelude::*;

use super::{best_runs, table_rows};
use crate::registry::RunSummary;

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Test bpd8 and train loss per epoch, as an SVG string.
fn curves_svg(run: &RunSummary) -> Result<String> {
    let c = &run.curves;
    let mut svg = String::new();
    if c.epochs.is_empty() {
        return Ok(svg);
    }
    {
        let root = SVGBackend::with_string(&mut svg, (420, 240)).into_drawing_area();
        root.fill(&WHITE)?;
        let x_max = (*c.epochs.last().unwrap_or(&1)).max(2) as f64;
        let values: Vec<f64> = c
            .test_bpd
            .iter()
            .chain(&c.train_loss)
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        let (lo, hi) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let pad = ((hi - lo) * 0.1).max(1e-3);
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(44)
            .build_cartesian_2d(1f64..x_max, (lo - pad)..(hi + pad))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .light_line_style(WHITE)
            .draw()?;
        let series = |v: &[f64]| -> Vec<(f64, f64)> {
            c.epochs
                .iter()
                .zip(v)
                .filter(|(_, y)| y.is_finite())
                .map(|(&e, &y)| (e as f64, y))
                .collect()
        };
        // Markers too, so a one-epoch run still shows its values.
        chart.draw_series(
            series(&c.test_bpd)
                .into_iter()
                .map(|p| Circle::new(p, 3, BLUE.filled())),
        )?;
        chart.draw_series(
            series(&c.train_loss)
                .into_iter()
                .map(|p| Circle::new(p, 3, RED.filled())),
        )?;
        chart
            .draw_series(LineSeries::new(series(&c.test_bpd), &BLUE))?
            .label("test bpd")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], BLUE));
        chart
            .draw_series(LineSeries::new(series(&c.train_loss), &RED))?
            .label("train loss (nats)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], RED));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

fn png_data_url(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    Some(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// Writes the report page for `runs` to `path`.
pub fn write_html(runs: &[RunSummary], params: &[String], path: &Path, runs_dir: &Path) -> Result<()> {
    let best_ids: Vec<String> = best_runs(runs, 1).into_iter().map(|r| r.id).collect();
    let rows = table_rows(runs, params);
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>pixelx report</title><style>\
         body{font-family:system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;font-size:13px}\
         th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f0f0f0}\
         tr.best{background:#e6f4e6;font-weight:600}.runs{display:flex;flex-wrap:wrap;gap:16px}\
         .run{border:1px solid #ddd;padding:12px;border-radius:6px}.run.best{border:2px solid #2a2}\
         .run img{image-rendering:pixelated;width:280px;display:block}h2{margin-top:32px}</style></head><body>",
    );
    html += &format!(
        "<h1>pixelx report</h1><p>{} run(s); best per experiment by test bpd8 highlighted.</p>",
        runs.len()
    );
    html += "<table><thead><tr>";
    for h in &rows[0] {
        html += &format!("<th>{}</th>", escape(h));
    }
    html += "</tr></thead><tbody>";
    for (run, row) in runs.iter().zip(&rows[1..]) {
        let class = if best_ids.contains(&run.id) {
            " class=\"best\""
        } else {
            ""
        };
        html += &format!("<tr{class}>");
        for f in row {
            html += &format!("<td>{}</td>", escape(f));
        }
        html += "</tr>";
    }
    html += "</tbody></table><h2>Runs</h2><div class=\"runs\">";
    for run in runs {
        let class = if best_ids.contains(&run.id) {
            "run best"
        } else {
            "run"
        };
        html += &format!(
            "<div class=\"{class}\"><h3>{} <small>{}</small></h3>",
            escape(&run.id),
            escape(&run.experiment)
        );
        if let Some(b) = run.best {
            html += &format!(
                "<p>best epoch {}: bpd8 {:.4}, bpd {:.4}</p>",
                b.epoch, b.bpd8, b.bpd
            );
        }
        if let Some(e) = &run.error {
            html += &format!("<p>error: {}</p>", escape(e));
        }
        html += &curves_svg(run).context("drawing curves")?;
        let samples = run.samples.as_deref().map(|rel| runs_dir.join(&run.id).join(rel));
        if let Some(url) = samples.as_deref().and_then(png_data_url) {
            html += &format!("<img alt=\"samples of {}\" src=\"{url}\">", escape(&run.id));
        }
        html += "</div>";
    }
    html += "</div></body></html>\n";
    crate::fsio::write_atomically(path, html.as_bytes())
}
