//! Large sweeps: the report and the dashboard over thousands of runs summarise them (top runs,
//! envelopes, sampled parameter charts, a limited or paged table) without losing the best run,
//! and `--format csv` still lists every run.
//! Belongs here: behaviour that only shows with thousands of runs.

use std::path::Path;

use crate::support::{self, http};
use pixelx::config::{ExperimentInfo, RunConfig};
use pixelx::registry::{Registry, RunFilter};
use pixelx::report::{scaled, views};

const RUNS: u64 = 5000;
const EPOCHS: u32 = 5;
const STEPS: i64 = 40;

/// A run's best test bpd8 before the per-epoch improvement: distinct for every run.
fn quality(i: u64) -> f64 {
    ((i * 7919 + 1234) % RUNS) as f64 * 1e-4
}

const LRS: [f64; 5] = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2];

/// `RUNS` completed runs written with SQL in one transaction (ingesting journals one by one
/// would take minutes), then the registry's per-run results rebuilt from their metrics.
fn synthetic_registry(runs_dir: &Path) -> Registry {
    std::fs::create_dir_all(runs_dir).unwrap();
    let path = runs_dir.join("registry.sqlite");
    let mut reg = Registry::open(&path).unwrap();
    let exp = reg
        .upsert_experiment(
            &ExperimentInfo::named("big", "5,000 synthetic runs"),
            None,
            Default::default(),
        )
        .unwrap();
    drop(reg);
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut run = tx
            .prepare(
                "INSERT INTO runs (id, experiment_id, config_json, config_hash, status, run_dir, created_at, method)
                 VALUES (?1, ?2, ?3, ?1, 'completed', ?4, ?5, 'grid')",
            )
            .unwrap();
        let mut metric = tx
            .prepare("INSERT INTO metrics (run_id, name, step, epoch, value) VALUES (?1, ?2, ?3, ?4, ?5)")
            .unwrap();
        for i in 0..RUNS {
            let id = format!("{i:012x}");
            let config = RunConfig {
                seed: i,
                learning_rate: LRS[(i % 5) as usize],
                epochs: EPOCHS,
                ..RunConfig::default()
            };
            let json = serde_json::to_string(&config).unwrap();
            let created = format!("2026-01-01T00:00:{:06}Z", i);
            run.execute(rusqlite::params![
                id,
                exp,
                json,
                runs_dir.join(&id).display().to_string(),
                created
            ])
            .unwrap();
            for epoch in 1..=EPOCHS {
                let bpd8 = 1.0 + quality(i) + 0.1 / epoch as f64;
                for (name, value) in [
                    ("test_bpd8", bpd8),
                    ("test_bpd", bpd8 - 7.0),
                    ("test_nll", 0.5),
                    ("epoch_train_loss", 0.2),
                    ("images_per_sec", 900.0),
                    ("epoch_seconds", 10.0),
                ] {
                    metric
                        .execute(rusqlite::params![
                            id,
                            name,
                            epoch as i64 * STEPS / EPOCHS as i64,
                            epoch,
                            value
                        ])
                        .unwrap();
                }
            }
            for step in 1..=STEPS {
                let loss = 0.1 + quality(i) + 1.0 / step as f64;
                metric
                    .execute(rusqlite::params![id, "train_loss", step, None::<i64>, loss])
                    .unwrap();
            }
        }
    }
    tx.commit().unwrap();
    let mut reg = Registry::open(&path).unwrap();
    reg.rebuild_results().unwrap();
    reg
}

fn best_run() -> String {
    let i = (0..RUNS)
        .min_by(|&a, &b| quality(a).total_cmp(&quality(b)))
        .unwrap();
    format!("{i:012x}")
}

/// The run ids of a page's table rows, in order.
fn row_ids(page: &str) -> Vec<String> {
    page.split("data-run=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_owned())
        .collect()
}

/// The part of `page` from `start` to the next `end`.
fn part<'a>(page: &'a str, start: &str, end: &str) -> &'a str {
    let from = &page[page.find(start).unwrap_or_else(|| panic!("no {start}"))..];
    &from[..from.find(end).unwrap()]
}

#[test]
fn five_thousand_runs_keep_the_best_run_drawn_and_linked_page_the_table_and_envelope_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let runs_dir = dir.path().join("runs");
    let reg = synthetic_registry(&runs_dir);
    let best = best_run();

    // The view reads at scale: the best runs and a sample evenly spaced by rank, not every run.
    let all = reg.summaries(&RunFilter::default()).unwrap();
    assert_eq!(all.len(), RUNS as usize);
    let rows = scaled::TableRows::Best(500, "bpd8");
    let view = scaled::experiment(&reg, "big", "", rows, views::loss_points)
        .unwrap()
        .unwrap();
    assert!(view.summarised());
    assert_eq!(view.run_count(), RUNS as usize);
    assert!(
        view.runs.len() < 2000,
        "{} of {RUNS} runs read in full",
        view.runs.len()
    );
    let best_view = view.runs.iter().find(|r| r.is_best()).unwrap();
    assert_eq!(best_view.summary.id, best);
    assert!(best_view.drawn && !best_view.loss.points.is_empty());

    // The envelope of the epoch chart stands on the rank-spaced sample (the best and the worst
    // of the other runs included): it covers every one of the other runs, at every epoch, and
    // its quantiles are those of all of them.
    let env = view.epoch_envelope.as_ref().expect("an epoch envelope");
    let stand_ins = view.stand_ins().into_iter().filter(|r| !r.is_top()).count();
    assert_eq!(env.runs, stand_ins);
    assert!((900..=scaled::SAMPLE_RUNS).contains(&env.runs), "{}", env.runs);
    let top: Vec<&str> = view
        .runs
        .iter()
        .filter(|r| r.is_top())
        .map(|r| r.summary.id.as_str())
        .collect();
    assert_eq!(top.len(), views::TOP_N);
    let others: Vec<_> = all.iter().filter(|r| !top.contains(&r.id.as_str())).collect();
    for epoch in 1..=EPOCHS {
        let p = env.points.iter().find(|p| p.x == epoch as f64).unwrap();
        assert!(p.min <= p.q10 && p.q10 <= p.median && p.median <= p.q90 && p.q90 <= p.max);
        let mut values: Vec<f64> = others
            .iter()
            .map(|r| r.curves.test_bpd8[epoch as usize - 1])
            .collect();
        values.sort_by(f64::total_cmp);
        for v in &values {
            assert!(p.min <= *v && *v <= p.max, "epoch {epoch}: {v} outside {p:?}");
        }
        let spread = values[values.len() - 1] - values[0];
        let q = |f: f64| values[((values.len() - 1) as f64 * f).round() as usize];
        for (sampled, exact) in [(p.q10, q(0.1)), (p.median, q(0.5)), (p.q90, q(0.9))] {
            assert!(
                (sampled - exact).abs() <= 0.01 * spread,
                "epoch {epoch}: sampled quantile {sampled}, of all runs {exact}"
            );
        }
    }
    let loss = view.loss_envelope.as_ref().expect("a loss envelope");
    let sampled = view.runs.iter().filter(|r| r.drawn && !r.is_top()).count();
    assert_eq!(loss.runs, sampled);
    assert!((100..=views::SAMPLED_OTHERS + 1).contains(&sampled), "{sampled}");

    // The report: the best run in the legend and drawn in its colour, the table limited with
    // a note, the file small.
    let html = dir.path().join("report.html");
    let (ok, out, err) = support::run_in(&runs_dir, &["report", "--html", html.to_str().unwrap()]);
    assert!(ok, "{err}");
    // The terminal table beside it lists what the report's table lists, with the same note.
    assert_eq!(out.lines().count(), 1 + 500, "header and the best 500");
    assert!(out.lines().nth(1).unwrap().starts_with(&best), "{out:.300}");
    assert!(err.contains("4500 more runs are not listed here"), "{err}");
    let one = dir.path().join("one.html");
    let args = ["report", "--experiment", "big", "--html", one.to_str().unwrap()];
    let (ok, out_one, err) = support::run_in(&runs_dir, &args);
    assert!(ok, "{err}");
    assert_eq!(out_one, out, "one experiment of one: the same 500 runs");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.len() < 3 * 1024 * 1024, "{} bytes", page.len());
    let legend = part(&page, "<ol class=\"legend\">", "</ol>");
    assert!(
        legend.find(&best).unwrap() < legend.find("</li>").unwrap(),
        "best first in the legend"
    );
    let epochs = part(&page, "chart epochs", "</figure>");
    assert!(
        epochs.to_uppercase().contains("#1F77B4"),
        "the best run's line is drawn"
    );
    assert!(epochs.contains("<polygon"), "the others as a band");
    assert!(page.contains(&format!("data-runs=\"{}\"", env.runs)));
    let rows = row_ids(&page);
    assert_eq!(rows.len(), 500);
    assert_eq!(rows[0], best);
    assert!(page.contains("4500 more runs are not listed here"));

    // Every run in the CSV.
    let (ok, csv, err) = support::run_in(&runs_dir, &["report", "--format", "csv"]);
    assert!(ok, "{err}");
    assert_eq!(csv.lines().count(), RUNS as usize + 1);

    // The dashboard: the best run linked, the table paged and sorted on the server.
    let (_server, addr) = support::serve(&runs_dir, &[]);
    let front = http::get(&addr, "/").text();
    assert!(front.len() < 3 * 1024 * 1024);
    assert!(front.contains(&format!("<a href=\"/runs/{best}\">{best}</a>")));
    let first = row_ids(&front);
    assert_eq!(first.len(), 50);
    assert_eq!(first[0], best);
    assert!(front.contains("page 1 of 100") && front.contains("rel=\"next\""));
    let second = http::get(&addr, "/experiments/big?page=2").text();
    let second_rows = row_ids(&second);
    assert_eq!(second_rows.len(), 50);
    assert!(
        second_rows.iter().all(|id| !first.contains(id)),
        "page 2 continues page 1"
    );
    assert_eq!(
        second_rows,
        rows[50..100],
        "pages in rank order, as the report lists them"
    );
    let by_lr = http::get(&addr, "/experiments/big?sort=learning_rate&desc=1").text();
    let top_lr = by_lr.split("data-run=\"").nth(1).unwrap();
    let id = &top_lr[..12];
    let i = u64::from_str_radix(id, 16).unwrap();
    assert_eq!(LRS[(i % 5) as usize], 1e-2, "descending learning rate first");
    assert_eq!(http::get(&addr, "/experiments/big?sort=nonsense").status, 400);
    assert_eq!(http::get(&addr, "/experiments/big?page=x").status, 400);
    assert_eq!(http::get(&addr, &format!("/runs/{best}")).status, 200);
}

/// Experiments named and sized as given, each run with one epoch of results (bpd8 distinct per
/// run) and a learning rate of `LRS`, written with SQL as `synthetic_registry` does.
fn experiments_registry(runs_dir: &Path, sizes: &[(&str, u64)]) -> Registry {
    std::fs::create_dir_all(runs_dir).unwrap();
    let path = runs_dir.join("registry.sqlite");
    let mut reg = Registry::open(&path).unwrap();
    let mut keys = Vec::new();
    for (name, _) in sizes {
        let info = ExperimentInfo::named(name, "");
        keys.push(reg.upsert_experiment(&info, None, Default::default()).unwrap());
    }
    drop(reg);
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    let tx = conn.transaction().unwrap();
    let mut n = 0u64;
    for ((_, size), exp) in sizes.iter().zip(keys) {
        for _ in 0..*size {
            let id = format!("{n:012x}");
            let config = RunConfig {
                seed: n,
                learning_rate: LRS[(n % 5) as usize],
                ..RunConfig::default()
            };
            tx.execute(
                "INSERT INTO runs (id, experiment_id, config_json, config_hash, status, run_dir, created_at, method)
                 VALUES (?1, ?2, ?3, ?1, 'completed', ?4, ?5, 'grid')",
                rusqlite::params![
                    id,
                    exp,
                    serde_json::to_string(&config).unwrap(),
                    runs_dir.join(&id).display().to_string(),
                    format!("2026-01-01T00:00:{n:06}Z")
                ],
            )
            .unwrap();
            let bpd8 = 1.0 + ((n * 7919) % 10_007) as f64 * 1e-4;
            for (name, value) in [("test_bpd8", bpd8), ("test_bpd", bpd8 - 0.5)] {
                tx.execute(
                    "INSERT INTO metrics (run_id, name, step, epoch, value) VALUES (?1, ?2, 1, 1, ?3)",
                    rusqlite::params![id, name, value],
                )
                .unwrap();
            }
            n += 1;
        }
    }
    tx.commit().unwrap();
    let mut reg = Registry::open(&path).unwrap();
    reg.rebuild_results().unwrap();
    reg
}

/// Beside `report --html` the terminal lists what the HTML report's tables list: the best 500 of
/// each experiment, not 500 of the whole registry; and an explicit `--limit` or another sort is
/// obeyed, not cut to 500.
#[test]
fn the_terminal_table_beside_an_html_report_lists_what_its_tables_list() {
    let dir = tempfile::tempdir().unwrap();
    let runs_dir = dir.path().join("runs");
    let _reg = experiments_registry(&runs_dir, &[("a", 300), ("b", 300), ("c", 600)]);
    // A run of `c` whose journal was never ingested: no result, so not among the runs listed,
    // and still named by the note on unread results.
    let unread = "ffffffffffff";
    rusqlite::Connection::open(runs_dir.join("registry.sqlite"))
        .unwrap()
        .execute(
            "INSERT INTO runs (id, experiment_id, config_json, config_hash, status, run_dir, created_at, method)
             SELECT ?1, id, '{}', ?1, 'running', ?1, '2026-02-01T00:00:00Z', 'grid' FROM experiments WHERE name = 'c'",
            [unread],
        )
        .unwrap();
    // A parameter swept only by the worst run of `c`, which is not listed: its column is.
    rusqlite::Connection::open(runs_dir.join("registry.sqlite"))
        .unwrap()
        .execute(
            "UPDATE runs SET config_json = json_set(config_json, '$.batch_size', 7) WHERE id =
             (SELECT run_id FROM run_results ORDER BY best_bpd8 DESC LIMIT 1)",
            [],
        )
        .unwrap();
    std::fs::create_dir_all(runs_dir.join(unread)).unwrap();
    std::fs::write(runs_dir.join(unread).join("journal.jsonl"), "{}\n").unwrap();
    let html = dir.path().join("report.html");
    let html = html.to_str().unwrap();
    let (ok, out, err) = support::run_in(&runs_dir, &["report", "--html", html]);
    assert!(ok, "{err}");
    let rows = row_ids(&std::fs::read_to_string(html).unwrap());
    assert_eq!(rows.len(), 300 + 300 + 500, "the HTML lists 500 per experiment");
    assert_eq!(out.lines().count(), 1 + rows.len(), "{err}");
    let header = out.lines().next().unwrap();
    assert!(header.contains("batch_size"), "{header}");
    let listed: std::collections::BTreeSet<&str> = out.lines().skip(1).map(|l| &l[..12]).collect();
    let in_html: std::collections::BTreeSet<&str> = rows.iter().map(String::as_str).collect();
    assert_eq!(listed, in_html, "the same runs");
    assert!(err.contains("note: 101 more runs are not listed here"), "{err}");
    assert!(
        err.contains("newer results in their run folder") && err.contains(unread),
        "{err}"
    );
    let (ok, out, err) = support::run_in(&runs_dir, &["report", "--html", html, "--limit", "1000"]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 1 + 1000, "--limit 1000 is obeyed");
    assert!(!err.contains("more runs are not listed"), "{err}");
    let (ok, out, err) = support::run_in(&runs_dir, &["report", "--html", html, "--sort", "id"]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 1 + 1201, "another sort lists every run");
    assert!(out.lines().nth(1).unwrap().starts_with("000000000000"));
    assert!(!err.contains("more runs are not listed"), "{err}");
}
