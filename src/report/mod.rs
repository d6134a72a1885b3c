//! Comparing runs: tables (plain, markdown, CSV, JSON), the best runs, and the comparison views
//! (overlaid curves, parameter charts, importance, best samples) rendered as a self-contained
//! HTML report or served live by `pixelx serve` (which owns the dashboard's routes and links:
//! the views here take a [`markup::Links`]).

pub mod charts;
mod envelope;
pub mod html;
pub mod importance;
pub mod markup;
pub mod param_charts;
mod params;
pub mod scaled;
mod section;
mod table;
pub mod views;

pub use html::{escape, write_html, write_report};

use anyhow::{bail, Result};
use serde::Serialize;

use crate::config::RUN_KEYS;
use crate::registry::RunSummary;

/// Output formats of `pixelx report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Markdown,
    Csv,
    Json,
}

/// Parameters whose values differ among `runs` (what a comparison should show).
pub fn varying_params(runs: &[RunSummary]) -> Vec<String> {
    RUN_KEYS
        .iter()
        .filter(|k| {
            runs.windows(2)
                .any(|w| w[0].params.get(**k) != w[1].params.get(**k))
        })
        .map(|k| k.to_string())
        .collect()
}

/// How long a running run still needs: the training images left at the images/s it trains at,
/// plus, per epoch left, the evaluation time its finished epochs took beyond their training.
pub fn eta(run: &RunSummary) -> Option<std::time::Duration> {
    let p = run.progress.as_ref()?;
    let rate = p.images_per_sec.filter(|v| *v > 0.0)?;
    let config: crate::config::RunConfig =
        serde_json::from_value(serde_json::Value::Object(run.params.clone())).ok()?;
    let images = config.images_per_epoch() as f64;
    let epochs_left = (config.epochs as i64 - p.epoch as i64 + 1).max(0) as f64;
    let fraction = p.step_in_epoch as f64 / p.steps_per_epoch.max(1) as f64;
    let done = run.curves.epochs.len() as f64;
    let overhead = match (run.wall_seconds, run.images_per_sec) {
        (Some(wall), Some(ips)) if done > 0.0 && ips > 0.0 => (wall / done - images / ips).max(0.0),
        _ => 0.0,
    };
    let seconds = (epochs_left - fraction).max(0.0) * images / rate + epochs_left * overhead;
    Some(std::time::Duration::from_secs_f64(seconds))
}

/// A run's status as reports show it: running runs with their epoch and ETA, and a running run
/// whose process is gone marked as such.
pub fn status_text(run: &RunSummary) -> String {
    if run.process_gone {
        return "running (process gone)".into();
    }
    match (&run.progress, run.status.as_str()) {
        (Some(p), "running") => {
            let epochs = run.params.get("epochs").and_then(|e| e.as_u64()).unwrap_or(0);
            if p.epoch as u64 > epochs {
                return format!("running (epoch {epochs}/{epochs}, finishing)");
            }
            let eta = eta(run).map_or(String::new(), |d| format!(", ETA {}", crate::format::duration(d)));
            format!("running (epoch {}/{epochs}{eta})", p.epoch)
        }
        (None, "running") => match &run.job {
            Some(job) => format!("running (Slurm job {job}, not started yet)"),
            None => "running (starting)".into(),
        },
        (_, status) => status.to_owned(),
    }
}

/// Whether `id` can name a run folder and a URL segment: the one run-id rule. Anything else read
/// from a registry is refused rather than joined to a path.
pub use crate::run_dir::is_run_id as safe_run_id;

pub(crate) fn param_text(run: &RunSummary, key: &str) -> String {
    match run.params.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

/// The rank order of the registry (`registry::ranking`) and of the views: runs with a finite
/// best bpd8 by it, then by bpd, then by id; runs without one after them, as they came (the
/// registry lists runs in the order they were added). Every sort breaks its ties by it, so a
/// table sorted here lists runs as a page sorted in SQL does.
fn rank_order(a: &RunSummary, b: &RunSummary) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let ranked = |r: &RunSummary| r.best.filter(|b| b.bpd8.is_finite());
    match (ranked(a), ranked(b)) {
        (Some(x), Some(y)) => x
            .bpd8
            .total_cmp(&y.bpd8)
            .then(x.bpd.total_cmp(&y.bpd))
            .then_with(|| a.id.cmp(&b.id)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Sorts by a column: `bpd8` (default; best first), `bpd`, `images_per_sec`, `wall`, `status`,
/// `id`, or any run parameter; ties in rank order.
pub fn sort_runs(runs: &mut [RunSummary], key: &str) -> Result<()> {
    let metric = |r: &RunSummary| -> f64 {
        match key {
            "bpd" => r.best.map_or(f64::INFINITY, |b| b.bpd),
            "images_per_sec" => -r.images_per_sec.unwrap_or(0.0),
            "wall" => r.wall_seconds.unwrap_or(f64::INFINITY),
            _ => f64::NAN,
        }
    };
    match key {
        "bpd8" => runs.sort_by(rank_order),
        "bpd" | "images_per_sec" | "wall" => {
            runs.sort_by(|a, b| metric(a).total_cmp(&metric(b)).then_with(|| rank_order(a, b)))
        }
        "status" => runs.sort_by(|a, b| a.status.as_str().cmp(b.status.as_str()).then_with(|| rank_order(a, b))),
        "trial" => runs.sort_by(|a, b| {
            let trial = |r: &RunSummary| r.trial.unwrap_or(i64::MAX);
            trial(a).cmp(&trial(b)).then_with(|| rank_order(a, b))
        }),
        "id" => runs.sort_by(|a, b| a.id.cmp(&b.id)),
        // As SQL sorts a page: numbers, then text, then runs without the parameter.
        k if RUN_KEYS.contains(&k) => runs.sort_by(|a, b| {
            let (x, y) = (param_text(a, k), param_text(b, k));
            let class = |r: &RunSummary, t: &str| {
                let missing = r.params.get(k).is_none_or(serde_json::Value::is_null);
                (missing, t.parse::<f64>().is_err())
            };
            class(a, &x)
                .cmp(&class(b, &y))
                .then_with(|| match (x.parse::<f64>(), y.parse::<f64>()) {
                    (Ok(p), Ok(q)) => p.total_cmp(&q),
                    _ => x.cmp(&y),
                })
                .then_with(|| rank_order(a, b))
        }),
        other => bail!(
            "cannot sort by `{other}`: use bpd8, bpd, images_per_sec, wall, status, id, trial or a run parameter"
        ),
    }
    Ok(())
}

/// The best `n` runs by test `bpd8` (ties by `bpd`) of each experiment, best first. Completed
/// runs compete; a run stopped early (pruned, interrupted, failed, diverged, still running) only
/// when its experiment has no completed run yet, as Optuna's best trial is a complete one, and
/// [`render_best`] then says how it ended.
pub fn best_runs(runs: &[RunSummary], n: usize) -> Vec<RunSummary> {
    let mut experiments: Vec<&str> = runs.iter().map(|r| r.experiment.as_str()).collect();
    experiments.sort();
    experiments.dedup();
    let mut out = Vec::new();
    for e in experiments {
        let with_results = || runs.iter().filter(|r| r.experiment == e && r.best.is_some());
        let completed = with_results().any(|r| r.status == "completed");
        let mut mine: Vec<RunSummary> = with_results()
            .filter(|r| !completed || r.status == "completed")
            .cloned()
            .collect();
        let _ = sort_runs(&mut mine, "bpd8");
        out.extend(mine.into_iter().take(n));
    }
    out
}

/// Rows of the comparison table: header, then one row per run.
pub fn table_rows(runs: &[RunSummary], params: &[String]) -> Vec<Vec<String>> {
    let trials = runs.iter().any(|r| r.trial.is_some());
    let mut header: Vec<String> = vec!["run".into(), "experiment".into(), "status".into()];
    if trials {
        header.push("trial".into());
    }
    header.extend(params.iter().cloned());
    header.extend(["best bpd8", "bpd", "epoch", "img/s", "wall s", "device"].map(String::from));
    let mut rows = vec![header];
    for r in runs {
        let mut row = vec![r.id.clone(), r.experiment.clone(), status_text(r)];
        if trials {
            row.push(r.trial.map_or("-".into(), |t| format!("{t} ({})", r.method)));
        }
        row.extend(params.iter().map(|p| param_text(r, p)));
        let fmt = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
        row.push(fmt(r.best.map(|b| b.bpd8), 4));
        row.push(fmt(r.best.map(|b| b.bpd), 4));
        row.push(r.best.map_or("-".into(), |b| b.epoch.to_string()));
        row.push(fmt(r.images_per_sec, 1));
        row.push(fmt(r.wall_seconds, 1));
        row.push(r.device.clone().unwrap_or_else(|| "-".into()));
        rows.push(row);
    }
    rows
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Renders the table in `format`.
pub fn render(runs: &[RunSummary], params: &[String], format: Format) -> Result<String> {
    let rows = table_rows(runs, params);
    Ok(match format {
        Format::Json => {
            #[derive(Serialize)]
            struct Out<'a> {
                runs: &'a [RunSummary],
            }
            serde_json::to_string_pretty(&Out { runs })?
        }
        Format::Csv => rows
            .iter()
            .map(|r| r.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","))
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Markdown => {
            let mut out = Vec::new();
            for (i, r) in rows.iter().enumerate() {
                out.push(format!(
                    "| {} |",
                    r.iter()
                        .map(|f| f.replace('|', "\\|"))
                        .collect::<Vec<_>>()
                        .join(" | ")
                ));
                if i == 0 {
                    out.push(format!("|{}|", vec!["---"; r.len()].join("|")));
                }
            }
            out.join("\n")
        }
        Format::Table => {
            let widths: Vec<usize> = (0..rows[0].len())
                .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
                .collect();
            rows.iter()
                .map(|r| {
                    r.iter()
                        .zip(&widths)
                        .map(|(f, w)| format!("{f:<w$}"))
                        .collect::<Vec<_>>()
                        .join("  ")
                        .trim_end()
                        .to_owned()
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
    })
}

/// The `--best` view: each winner with its full configuration and artefacts (paths under
/// `runs_dir`).
pub fn render_best(best: &[RunSummary], format: Format, runs_dir: &std::path::Path) -> Result<String> {
    if format == Format::Json {
        return Ok(serde_json::to_string_pretty(
            &serde_json::json!({ "best": best }),
        )?);
    }
    let mut out = String::new();
    for r in best {
        let Some(b) = r.best else { continue };
        let how = if r.status == "completed" {
            String::new()
        } else {
            format!("; {}, no run of {} has completed", status_text(r), r.experiment)
        };
        out += &format!(
            "best of {}: run {} (epoch {}{how}): test bpd8 {:.4}, bpd {:.4}, nll {:.4}\n",
            r.experiment, r.id, b.epoch, b.bpd8, b.bpd, b.nll
        );
        let root = runs_dir.join(&r.id);
        let show = |rel: Option<&str>| rel.map_or("-".into(), |p| root.join(p).display().to_string());
        if let Some(t) = r.trial {
            out += &format!("  trial      {t} ({} search)\n", r.method);
        }
        out += &format!("  checkpoint {}\n", show(r.checkpoint.as_deref()));
        out += &format!("  samples    {}\n", show(r.samples.as_deref()));
        let config: Vec<String> = RUN_KEYS
            .iter()
            .map(|k| format!("{k}={}", param_text(r, k)))
            .collect();
        out += &format!("  config     {}\n", config.join(" "));
    }
    if best.is_empty() {
        out += "no run has test metrics yet\n";
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{BestEpoch, Curves, Progress};

    /// A run of 3 epochs of 1,000 images, in epoch 2 at step 5 of 10, at 100 images/s; its
    /// first epoch took 12 s (10 s of training, 2 of evaluation).
    fn running() -> RunSummary {
        let config = crate::config::RunConfig {
            epochs: 3,
            train_subset: 1000,
            ..Default::default()
        };
        let serde_json::Value::Object(params) = serde_json::to_value(config).unwrap() else {
            unreachable!()
        };
        RunSummary {
            id: "abc".into(),
            experiment: "e".into(),
            status: crate::registry::RunStatus::Running,
            method: "grid".into(),
            trial: None,
            device: Some("cpu".into()),
            precision_used: Some("fp32".into()),
            params,
            best: None,
            images_per_sec: Some(100.0),
            wall_seconds: Some(12.0),
            checkpoint: None,
            samples: None,
            error: None,
            started_at: None,
            finished_at: None,
            progress: Some(Progress {
                epoch: 2,
                step_in_epoch: 5,
                steps_per_epoch: 10,
                images_per_sec: Some(100.0),
                at: None,
            }),
            process_gone: false,
            job: None,
            journal_offset: 0,
            curves: Curves {
                epochs: vec![1],
                ..Curves::default()
            },
        }
    }

    /// Ties are broken in the registry's rank order (bpd8, bpd, id; runs without a result after,
    /// as they came), for every sort key, as a page sorted in SQL breaks them.
    #[test]
    fn sorts_break_ties_in_rank_order() {
        use crate::report::views::tests::summary;
        let lr = |v: f64| serde_json::json!({ "learning_rate": v });
        let runs = || {
            vec![
                summary("z", None, lr(1e-2)),
                summary("b", Some(1.0), lr(1e-3)),
                summary("y", None, lr(1e-3)),
                summary("a", Some(1.0), lr(1e-3)),
                summary("c", Some(0.5), lr(1e-2)),
                summary("m", Some(0.1), serde_json::json!({})),
                summary("t", Some(0.2), serde_json::json!({ "learning_rate": "high" })),
            ]
        };
        let sorted = |key: &str| {
            let mut r = runs();
            sort_runs(&mut r, key).unwrap();
            r.into_iter().map(|r| r.id).collect::<Vec<_>>()
        };
        assert_eq!(sorted("bpd8"), ["m", "t", "c", "a", "b", "z", "y"]);
        // Numbers, then text, then no value, as the registry sorts a page.
        assert_eq!(sorted("learning_rate"), ["a", "b", "y", "c", "z", "t", "m"]);
        assert_eq!(sorted("status"), ["m", "t", "c", "a", "b", "z", "y"]);
    }

    #[test]
    fn a_running_run_shows_its_epoch_and_an_eta_with_evaluation() {
        let run = running();
        // 1,500 images at 100/s, and 2 s of evaluation for each of the 2 epochs left.
        assert_eq!(eta(&run), Some(std::time::Duration::from_secs(19)));
        assert_eq!(status_text(&run), "running (epoch 2/3, ETA 19s)");
        let mut last = running();
        if let Some(p) = &mut last.progress {
            p.epoch = 4;
        }
        assert_eq!(status_text(&last), "running (epoch 3/3, finishing)");
    }

    /// A winner that did not complete (its experiment has no completed run) says how it ended.
    #[test]
    fn a_best_run_that_did_not_complete_says_so() {
        let best = BestEpoch {
            epoch: 1,
            bpd8: 7.3,
            bpd: 0.3,
            nll: 0.2,
        };
        let failed = RunSummary {
            status: crate::registry::RunStatus::Failed,
            progress: None,
            best: Some(best),
            ..running()
        };
        let completed = RunSummary {
            status: crate::registry::RunStatus::Completed,
            ..failed.clone()
        };
        let text = |r: &RunSummary| {
            render_best(
                std::slice::from_ref(r),
                Format::Table,
                std::path::Path::new("runs"),
            )
            .unwrap()
        };
        assert!(
            text(&failed).starts_with("best of e: run abc (epoch 1; failed, no run of e has completed): "),
            "{}",
            text(&failed)
        );
        assert!(text(&completed).starts_with("best of e: run abc (epoch 1): "));
        assert_eq!(
            best_runs(std::slice::from_ref(&failed), 1)[0].id,
            "abc",
            "still the best there is"
        );
    }
}
