//! `pixelx report --html`: the comparison views on a real sweep (with a hostile experiment name
//! and a run that really diverges), and a large synthetic registry that must stay small.
//! Belongs here: the HTML report `pixelx report --html` writes.

use std::path::Path;

use crate::support::synthetic::{self, SyntheticEpoch};
use crate::support::{self, HOSTILE_DESCRIPTION, HOSTILE_NAME};
use pixelx::config::{ExperimentInfo, RunConfig};
use pixelx::registry::Registry;
use pixelx::report::escape;

/// Three learning rates that train and one so large (the largest pixelx accepts) that it blows up: a real
/// `diverged` run next to completed ones.
const SWEEP: &str = r#"
[experiment]
name = "<script>alert(1)</script> ../../x \"q\" 'q'"
description = "<img src=x onerror=alert(2)> & ../../etc/passwd"
dataset = "mnist"

[defaults]
epochs = 2
batch_size = 32
hidden_fmaps = 8
out_hidden_fmaps = 8
hidden_layers = 1
causal_ksize = 5
hidden_ksize = 3
epoch_samples = 2
train_subset = 512
test_subset = 128
lr_schedule = "cosine"

[grid]
learning_rate = [2e-3, 5e-3, 1e-2, 1e6]

[scheduler]
devices = ["cpu", "cpu"]
"#;

/// The part of `page` from the first occurrence of `start` to the next `</figure>`.
fn figure<'a>(page: &'a str, start: &str) -> &'a str {
    let from = page
        .find(start)
        .unwrap_or_else(|| panic!("no `{start}` in the page"));
    let rest = &page[from..];
    &rest[..rest.find("</figure>").unwrap_or(rest.len())]
}

#[test]
fn the_report_overlays_every_run_escapes_hostile_names_and_labels_the_diverged_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sweep.toml");
    std::fs::write(&file, SWEEP).unwrap();
    let runs = dir.path().join("runs");
    let out = support::pixelx()
        .arg("--runs-dir")
        .arg(&runs)
        .args(["-q", "run"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("3 completed") && stdout.contains("1 diverged"),
        "{stdout}"
    );

    let html = dir.path().join("report.html");
    let out = support::pixelx()
        .arg("--runs-dir")
        .arg(&runs)
        .args(["report", "--html"])
        .arg(&html)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = std::fs::read_to_string(&html).unwrap();

    // One file, no scripts, nothing fetched from elsewhere.
    for banned in ["<script", "<link", "src=\"http", "href=\"http", "<iframe"] {
        assert!(!page.contains(banned), "report contains {banned}");
    }
    // Hostile strings only ever appear escaped.
    assert!(!page.contains(HOSTILE_NAME) && !page.contains("<img src=x"));
    assert!(
        page.contains(&escape(HOSTILE_NAME)),
        "the escaped experiment name is shown"
    );
    assert!(page.contains(&escape(HOSTILE_DESCRIPTION)));

    // All runs on shared axes: one per-epoch chart with a line per completed run.
    let epochs = figure(&page, "<figure class=\"chart epochs\"");
    assert!(epochs.contains("<svg"), "per-epoch chart");
    assert!(
        epochs.matches("<polyline").count() >= 3,
        "a line per completed run"
    );
    let steps = figure(&page, "<figure class=\"chart steps\"");
    assert!(
        steps.matches("<polyline").count() >= 6,
        "smoothed and raw loss per run"
    );
    assert!(
        steps.contains(">\ndiverged\n</text>"),
        "the diverged run is labelled where it stopped"
    );
    // The learning rate is swept on a log axis; parallel coordinates and importance follow.
    let lr = figure(&page, "<figure class=\"chart param\"");
    assert!(
        lr.contains("learning_rate (log scale)"),
        "log axis for the learning rate"
    );
    assert!(page.contains("<figure class=\"chart parallel\""));
    assert!(page.contains("<table class=\"importance\"") && page.contains("<td>learning_rate</td>"));
    // Every run is in the table with its state; the best is highlighted, the diverged labelled.
    assert_eq!(page.matches("class=\"run-row ").count(), 4);
    assert_eq!(page.matches("data-status=\"diverged\"").count(), 1);
    assert!(page.contains("<span class=\"badge st-diverged\">diverged</span>"));
    assert_eq!(page.matches(" best\" data-run=").count(), 1, "one best run");
    assert_eq!(page.matches("<ol class=\"legend\">").count(), 1);
    // Each run in the legend has its own colour, and that colour draws it in every chart.
    let legend = &page[page.find("<ol class=\"legend\">").unwrap()..];
    let legend: Vec<&str> = legend[..legend.find("</ol>").unwrap()]
        .split("<span class=\"sw\" style=\"background:#")
        .skip(1)
        .map(|entry| &entry[..6])
        .collect();
    assert!(legend.len() >= 3, "a legend entry per completed run");
    let mut distinct = legend.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), legend.len(), "colours differ: {legend:?}");
    let parallel = figure(&page, "<figure class=\"chart parallel\"");
    for colour in &legend {
        let hex = colour.to_uppercase();
        for (chart, svg) in [
            ("epochs", epochs),
            ("steps", steps),
            ("learning_rate", lr),
            ("parallel", parallel),
        ] {
            assert!(svg.contains(&hex), "{chart} chart draws legend colour #{hex}");
        }
    }
    // Sample grids of the best runs, per recorded epoch, embedded.
    assert!(page.matches("src=\"data:image/png;base64,iVBORw0KGgo").count() >= 6);
    assert!(page.contains("epoch 2 (best)"));
}

/// A registry of `n` runs recorded as a worker would (its journal, ingested), without training.
fn synthetic_registry(path: &Path, n: u64) -> Registry {
    let mut reg = Registry::open(path).unwrap();
    let info = ExperimentInfo {
        dataset: Some(pixelx::data::DatasetKind::Mnist),
        ..ExperimentInfo::named("big", "")
    };
    let exp = reg.upsert_experiment(&info, None, Default::default()).unwrap();
    for i in 0..n {
        let id = format!("run{i:04}");
        let lr = 1e-4 * (1 + i % 7) as f64;
        let config = RunConfig {
            seed: i,
            learning_rate: lr,
            epochs: 5,
            ..RunConfig::default()
        };
        let run_dir = path.parent().unwrap().join(&id);
        reg.add_run(exp, &id, &config, &run_dir, None).unwrap();
        let epochs: Vec<SyntheticEpoch> = (1..=5u32)
            .map(|epoch| SyntheticEpoch {
                bpd8: 1.2 - 0.01 * epoch as f64 + (lr.log10() + 3.0).abs() * 0.05 + (i % 13) as f64 * 1e-3,
                samples: false,
            })
            .collect();
        let completed = Some((pixelx::journal::FinalStatus::Completed, None));
        synthetic::write_journal(&run_dir, 100, &epochs, |step| 1.0 / step as f64 + lr, completed);
        reg.ingest(&id, &run_dir).unwrap();
    }
    reg
}

#[test]
fn a_report_of_two_hundred_runs_folds_its_table_and_gives_only_the_top_ten_a_legend() {
    let dir = tempfile::tempdir().unwrap();
    let reg = synthetic_registry(&dir.path().join("registry.sqlite"), 200);
    let runs = reg.summaries(&Default::default()).unwrap();
    let html = dir.path().join("report.html");
    pixelx::report::write_html(&reg, &runs, dir.path(), &html).unwrap();
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(
        page.matches("class=\"run-row ").count(),
        200,
        "every run is in the file"
    );
    assert!(
        page.contains("<summary>150 more runs</summary>"),
        "rows past 50 are folded"
    );
    let legend = &page[page.find("<ol class=\"legend\">").unwrap()..];
    let legend = &legend[..legend.find("</ol>").unwrap()];
    assert_eq!(legend.matches("<li>").count(), 10);
    assert!(page.contains("190 more runs in grey."));
    let size = page.len();
    assert!(size < 1024 * 1024, "200 runs: {size} bytes");
}
