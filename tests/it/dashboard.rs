//! `pixelx serve` against real sweeps: a headless Chromium (Debian's, installed by
//! scripts/setup-chromium.sh) renders the dashboard and must see a run that finishes during the
//! test appear without a reload; every route escapes hostile names and refuses traversal.
//! Belongs here: anything `pixelx serve` answers (pages, routes, live updates, binding).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::browser::Browser;
use crate::support::http::{get, get_with_host, Events};
use crate::support::{self, registry_read_only, Killed, TestCommand, HOSTILE_DESCRIPTION, HOSTILE_NAME};
use pixelx::config::{ExperimentInfo, RunConfig};
use pixelx::registry::{Registry, RunFilter};
use pixelx::report::escape;
use pixelx::run_dir::RunDir;

fn sweep_file(dir: &Path, name: &str, description: &str, grid: &str) -> PathBuf {
    let file = dir.join("sweep.toml");
    let text = format!(
        "[experiment]\nname = {}\ndescription = {}\ndataset = \"mnist\"\n\n[defaults]\nepochs = 2\n\
         batch_size = 32\nhidden_fmaps = 8\nout_hidden_fmaps = 8\nhidden_layers = 1\ncausal_ksize = 5\n\
         hidden_ksize = 3\nepoch_samples = 2\ntrain_subset = 512\ntest_subset = 128\n\
         lr_schedule = \"cosine\"\n\n[grid]\n{grid}\n\n[scheduler]\ndevices = [\"cpu\", \"cpu\"]\n",
        toml::Value::String(name.into()),
        toml::Value::String(description.into()),
    );
    std::fs::write(&file, text).unwrap();
    file
}

fn run_sweep(dir: &Path, file: &Path, extra: &[&str]) {
    TestCommand::pixelx_in(&dir.join("runs"))
        .args(["-q", "run"])
        .arg(file)
        .args(extra)
        .stdout();
}

/// `pixelx serve --port 0` on `dir/runs`; returns the process and its `127.0.0.1:PORT`.
fn serve(dir: &Path) -> (Killed, String) {
    support::serve(&dir.join("runs"), &[])
}

const ROWS: &str =
    "Array.from(document.querySelectorAll('tr.run-row'), r => [r.dataset.run, r.dataset.status])";

#[test]
fn in_a_real_browser_the_dashboard_shows_runs_charts_and_samples_and_a_finishing_run_appears_live() {
    let dir = tempfile::tempdir().unwrap();
    let file = sweep_file(
        dir.path(),
        "live",
        "two runs, then a third",
        "learning_rate = [2e-3, 5e-3]",
    );
    run_sweep(dir.path(), &file, &[]);
    let first: Vec<String> = registry_read_only(&dir.path().join("runs"))
        .summaries(&RunFilter::default())
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(first.len(), 2);

    let (_server, addr) = serve(dir.path());
    let mut browser = Browser::launch();
    browser.open(&format!("http://{addr}/"));

    // The rendered DOM: both runs, the comparison charts, the sample grids loaded.
    let rows = browser.eval(ROWS);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for r in rows {
        assert!(first.contains(&r[0].as_str().unwrap().to_owned()), "{r}");
        assert_eq!(r[1], "completed");
    }
    let charts = browser.eval(
        "({epochs: document.querySelectorAll('figure.epochs svg polyline').length,
           steps: document.querySelectorAll('figure.steps svg polyline').length,
           params: document.querySelectorAll('figure.param svg').length,
           parallel: document.querySelectorAll('figure.parallel svg').length,
           legend: document.querySelectorAll('ol.legend li').length})",
    );
    assert!(charts["epochs"].as_u64().unwrap() >= 2, "{charts}");
    assert!(charts["steps"].as_u64().unwrap() >= 4, "{charts}");
    assert_eq!(charts["params"], 1, "{charts}");
    assert_eq!(charts["parallel"], 1, "{charts}");
    assert_eq!(charts["legend"], 2, "{charts}");
    browser.wait_for(
        "document.images.length >= 4 && Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)",
        Duration::from_secs(10),
    );
    let images = browser.statuses("/img/");
    assert!(images.len() >= 4, "{images:?}");
    assert!(images.iter().all(|(_, s)| *s == 200), "{images:?}");

    // A third run trains and finishes while the page stays open: it must appear, completed,
    // in the same document (the marker set now would not survive a reload).
    browser.eval("window.__marker = 'same page'; true");
    run_sweep(
        dir.path(),
        &file,
        &["--set", "grid.learning_rate=[2e-3, 5e-3, 1e-2]"],
    );
    let all: Vec<String> = registry_read_only(&dir.path().join("runs"))
        .summaries(&RunFilter::default())
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    let new = all.iter().find(|id| !first.contains(id)).unwrap().clone();
    browser.wait_for(
        &format!("{ROWS}.some(([id, s]) => id === '{new}' && s === 'completed')"),
        Duration::from_secs(30),
    );
    assert_eq!(
        browser.eval("window.__marker"),
        "same page",
        "updated without a reload"
    );
    assert_eq!(
        browser.eval("performance.getEntriesByType('navigation').length"),
        1
    );
    assert!(
        browser
            .eval("Number(document.body.dataset.updates)")
            .as_u64()
            .unwrap()
            >= 1
    );
    assert!(
        browser
            .eval("document.querySelectorAll('figure.epochs svg polyline').length")
            .as_u64()
            .unwrap()
            >= 3
    );

    // The new run's own page: config, history, curves, samples, checkpoint paths.
    browser.open(&format!("http://{addr}/runs/{new}"));
    let page = browser.eval(
        "({title: document.querySelector('main h1').textContent,
           config: Array.from(document.querySelectorAll('table.config tr'), r => r.textContent),
           events: Array.from(document.querySelectorAll('table.events tbody tr'), r => r.children[1].textContent),
           charts: document.querySelectorAll('figure.chart svg').length,
           text: document.body.textContent})",
    );
    assert_eq!(page["title"], format!("run {new}"));
    assert!(
        page["config"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "learning_rate0.01"),
        "{page}"
    );
    let events: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    assert_eq!(events, ["queued", "launched", "running", "completed"]);
    assert_eq!(page["charts"], 2);
    assert!(page["text"]
        .as_str()
        .unwrap()
        .contains("checkpoints/epoch-0002.safetensors"));
    browser.wait_for(
        "document.images.length == 2 && Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)",
        Duration::from_secs(10),
    );
    let mine = browser.statuses(&format!("/img/{new}/"));
    assert!(mine.len() >= 2 && mine.iter().all(|(_, s)| *s == 200), "{mine:?}");
}

// ---------------------------------------------------------------------------------------------
// Escaping and traversal, over HTTP, on a real sweep with a hostile experiment name.

fn hostile_sweep(dir: &Path) -> Vec<String> {
    let file = sweep_file(
        dir,
        HOSTILE_NAME,
        HOSTILE_DESCRIPTION,
        "learning_rate = [2e-3, 5e-3]",
    );
    run_sweep(dir, &file, &[]);
    registry_read_only(&dir.join("runs"))
        .summaries(&RunFilter::default())
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

fn assert_escaped(what: &str, page: &str) {
    assert!(!page.contains(HOSTILE_NAME), "{what}: raw experiment name");
    assert!(!page.contains("<img src=x"), "{what}: raw description");
    assert!(!page.contains("<script>"), "{what}: a script element");
    assert!(!page.contains("alert(1)</script>"), "{what}: the hostile script");
}

#[test]
fn hostile_names_are_escaped_and_traversal_or_unknown_ids_get_404_or_400_on_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let ids = hostile_sweep(dir.path());
    let (_server, addr) = serve(dir.path());
    let id = &ids[0];
    let encoded = pixelx::report::html::url_segment(HOSTILE_NAME);

    // Every page shows the hostile strings escaped, never raw.
    for path in [
        "/".to_owned(),
        format!("/experiments/{encoded}"),
        format!("/runs/{id}"),
    ] {
        let r = get(&addr, &path);
        assert_eq!(r.status, 200, "{path}");
        let page = r.text();
        assert_escaped(&path, &page);
        assert!(
            page.contains(&escape(HOSTILE_NAME)),
            "{path} shows the name, escaped"
        );
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline'; script"),
            "{csp}"
        );
        assert_eq!(r.header("x-content-type-options").as_deref(), Some("nosniff"));
    }
    assert!(get(&addr, "/").text().contains(&escape(HOSTILE_DESCRIPTION)));

    // The one file a run page links to is served, as a PNG.
    let img = get(&addr, &format!("/img/{id}/2"));
    assert_eq!(img.status, 200);
    assert_eq!(img.header("content-type").as_deref(), Some("image/png"));
    assert_eq!(&img.body[..8], b"\x89PNG\r\n\x1a\n");

    // A file on disk that the registry does not name is not served, though its path is valid.
    let unrecorded = RunDir::new(&dir.path().join("runs"), id).epoch_samples(7);
    std::fs::copy(
        RunDir::new(&dir.path().join("runs"), id).epoch_samples(2),
        &unrecorded,
    )
    .unwrap();
    assert_eq!(get(&addr, &format!("/img/{id}/7")).status, 404);

    let attempts = [
        ("/runs/../../etc/passwd", 404),
        ("/runs/..%2f..%2fetc%2fpasswd", 400),
        ("/runs/%2e%2e/%2e%2e/etc/passwd", 404),
        ("/runs/%2e%2e%2f%2e%2e%2fetc%2fpasswd", 400),
        ("/runs/%2E%2E", 400),
        ("/runs/..", 400),
        ("/runs/ffffffffffff", 404),
        ("/runs/%3Cscript%3E", 400),
        ("/experiments/..%2f..%2fetc%2fpasswd", 404),
        ("/experiments/%3Cscript%3Ealert(1)%3C%2Fscript%3E", 404),
        ("/experiments/no-such-experiment", 404),
        ("/img/ffffffffffff/1", 404),
        ("/img/..%2f..%2fetc/1", 400),
        ("/img/%2e%2e/1", 400),
        ("/img/ID/../../x", 404),
        ("/img/ID/..%2f..%2fx", 400),
        ("/img/ID/1%2f..%2f..%2fconfig.toml", 400),
        ("/img/ID/-1", 400),
        ("/img/ID/99", 404),
        ("/img/ID/2/../../../../etc/passwd", 404),
        ("/static/../../etc/passwd", 404),
        ("/static/live.js/..%2f..%2fCargo.toml", 404),
        ("/etc/passwd", 404),
        ("/registry.sqlite", 404),
        ("/runs/registry.sqlite", 400),
        ("//etc/passwd", 404),
    ];
    for (path, want) in attempts {
        let path = path.replace("ID", id);
        let r = get(&addr, &path);
        assert_eq!(r.status, want, "{path}");
        let body = r.text();
        assert!(
            !body.contains("root:") && !body.contains("SQLite format"),
            "{path} leaked a file"
        );
        assert_escaped(&path, &body);
    }

    // Another web site's page (DNS rebinding) cannot read a loopback dashboard.
    assert_eq!(get_with_host(&addr, "/", "evil.example:80").status, 400);
    assert_eq!(
        get_with_host(&addr, "/", &addr.replace("127.0.0.1", "localhost")).status,
        200
    );
}

// ---------------------------------------------------------------------------------------------
// Issue 17: the registry file replaced under a running server, other loopback addresses, and
// names that are path segments.

/// A real registry at `path` with one experiment of `runs` queued runs (nothing trained).
fn registry_with(path: &Path, experiment: &str, runs: usize) {
    let mut reg = Registry::open(path).unwrap();
    let exp = reg
        .upsert_experiment(&ExperimentInfo::named(experiment, ""), None, Default::default())
        .unwrap();
    for i in 0..runs {
        let config = RunConfig {
            seed: i as u64,
            ..RunConfig::default()
        };
        let id = format!("{:012x}", i + 1);
        reg.add_run(exp, &id, &config, &path.with_file_name(&id), None)
            .unwrap();
    }
}

/// The change token the front page is rendered with.
fn page_token(addr: &str) -> String {
    let page = get(addr, "/").text();
    let at = page.find("data-token=\"").expect("a live page") + "data-token=\"".len();
    page[at..][..page[at..].find('"').unwrap()].to_owned()
}

#[test]
fn live_updates_follow_a_registry_that_is_replaced_deleted_or_created_again() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    let path = runs.join("registry.sqlite");
    registry_with(&path, "first", 1);
    let (_server, addr) = serve(dir.path());
    // A generous wait per event: the watcher polls twice a second.
    let mut events = Events::open(&addr, Duration::from_secs(30));
    let first = events.until(|t| t != "none").expect("a token for the registry");
    assert_eq!(first, page_token(&addr));

    // Replaced, as a restore from a backup does: a new file renamed over the old one.
    let fresh = runs.join("restored.sqlite");
    registry_with(&fresh, "second", 2);
    std::fs::rename(&fresh, &path).unwrap();
    let replaced = page_token(&addr);
    assert_ne!(replaced, first, "pages render the new file");
    assert!(get(&addr, "/").text().contains("second"));
    assert_eq!(
        events.until(|t| t == replaced).as_deref(),
        Some(replaced.as_str()),
        "/events moves to the replaced file's token"
    );

    // Deleted: pages say there is none, and so does the stream.
    std::fs::remove_file(&path).unwrap();
    assert_eq!(page_token(&addr), "none");
    assert!(get(&addr, "/")
        .text()
        .contains("This page updates when it appears"));
    assert_eq!(events.until(|t| t == "none").as_deref(), Some("none"));

    // Created again: the promise "this page updates when it appears" is kept.
    registry_with(&fresh, "third", 3);
    std::fs::rename(&fresh, &path).unwrap();
    let recreated = page_token(&addr);
    assert!(recreated != "none" && recreated != replaced, "{recreated}");
    assert_eq!(
        events.until(|t| t == recreated).as_deref(),
        Some(recreated.as_str()),
        "/events follows the re-created file"
    );
}

#[test]
fn a_server_bound_to_another_loopback_address_answers_at_the_url_it_prints() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    registry_with(&runs.join("registry.sqlite"), "e", 1);
    let (_server, addr) = support::serve(&dir.path().join("runs"), &["--bind", "127.0.0.2"]);
    assert!(addr.starts_with("127.0.0.2:"), "{addr}");
    let r = get(&addr, "/");
    assert_eq!(r.status, 200, "{}", r.text());
    let port = addr.rsplit(':').next().unwrap();
    assert_eq!(
        get_with_host(&addr, "/", &format!("localhost:{port}")).status,
        200
    );
    // Still no answer to another site's name (DNS rebinding).
    assert_eq!(get_with_host(&addr, "/", "evil.example:80").status, 400);
    assert_eq!(
        get_with_host(&addr, "/", &format!("127.0.0.3:{port}")).status,
        400
    );
}

#[test]
fn an_experiment_named_dot_dot_gets_a_link_that_a_browser_does_not_fold_to_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    // Recorded by an older pixelx: experiment files may no longer name one so.
    registry_with(&runs.join("registry.sqlite"), "..", 1);
    let (_server, addr) = serve(dir.path());
    let page = get(&addr, "/").text();
    assert!(!page.contains("href=\"/experiments/..\""), "{page}");
    let r = get(&addr, "/experiments?name=%2E%2E");
    assert_eq!(r.status, 200);
    assert!(r.text().contains(".. · pixelx"), "{}", r.text());
    assert_eq!(get(&addr, "/experiments?name=%ZZ").status, 400);

    // Where a browser really goes: `/experiments/%2E%2E` would be `/` (the WHATWG URL standard).
    let mut browser = Browser::launch();
    browser.open(&format!("http://{addr}/"));
    let href = browser.eval("document.querySelector('table.experiments a').href");
    let href = href.as_str().unwrap();
    assert!(href.contains("/experiments"), "{href}");
    browser.open(href);
    assert_eq!(browser.eval("document.title"), ".. · pixelx");
}

// ---------------------------------------------------------------------------------------------
// Issue 18: pages are templates that escape every value they print.

/// Markup, quotes and an ampersand, as text a user or a file could put in any field.
const HOSTILE_TEXT: &str = "<script>alert(\"x\")</script> & 'q'";
/// A run id a registry can hold (written by hand, or by another tool) but pixelx never makes.
const HOSTILE_RUN_ID: &str = "<b id='r'>&amp;\"";

/// A registry of one experiment named [`HOSTILE_TEXT`], described so, with a completed run and
/// a failed one whose id is [`HOSTILE_RUN_ID`]; the completed run's `lr_schedule` and the
/// failed run's error and device are hostile too. Both have a test result, so both are ranked.
fn hostile_registry(runs: &Path) {
    std::fs::create_dir_all(runs).unwrap();
    let path = runs.join("registry.sqlite");
    let mut reg = Registry::open(&path).unwrap();
    let exp = reg
        .upsert_experiment(
            &ExperimentInfo::named(HOSTILE_TEXT, HOSTILE_TEXT),
            None,
            Default::default(),
        )
        .unwrap();
    for (i, id) in ["aaaaaaaaaaaa", HOSTILE_RUN_ID].into_iter().enumerate() {
        let config = RunConfig {
            seed: i as u64,
            ..RunConfig::default()
        };
        reg.add_run(exp, id, &config, &runs.join(format!("run{i}")), None)
            .unwrap();
    }
    drop(reg);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE runs SET status = 'completed', config_json = json_set(config_json, '$.lr_schedule', ?1)
         WHERE id = 'aaaaaaaaaaaa'",
        [HOSTILE_TEXT],
    )
    .unwrap();
    conn.execute(
        "UPDATE runs SET status = 'failed', error = ?1, device = ?1 WHERE id = ?2",
        [HOSTILE_TEXT, HOSTILE_RUN_ID],
    )
    .unwrap();
    for (i, id) in ["aaaaaaaaaaaa", HOSTILE_RUN_ID].into_iter().enumerate() {
        for (name, value) in [
            ("test_bpd8", 1.5 + i as f64),
            ("test_bpd", 0.5),
            ("test_nll", 0.3),
            ("epoch_train_loss", 0.2),
        ] {
            conn.execute(
                "INSERT INTO metrics (run_id, name, step, epoch, value) VALUES (?1, ?2, 10, 1, ?3)",
                rusqlite::params![id, name, value],
            )
            .unwrap();
        }
    }
    drop(conn);
    Registry::open(&path).unwrap().rebuild_results().unwrap();
}

/// [`HOSTILE_TEXT`] and [`HOSTILE_RUN_ID`] as the templates print them: askama's character
/// references (`&#60;` for `<`), which hand-written escaping (`&lt;`) never produced.
const ESCAPED_TEXT: &str = "&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62; &#38; &#39;q&#39;";
const ESCAPED_RUN_ID: &str = "&#60;b id=&#39;r&#39;&#62;&#38;amp;&#34;";

/// No hostile text raw in `page`, and each of `shown` there as the templates escape it.
fn assert_escaped_by_the_templates(what: &str, page: &str, shown: &[&str]) {
    for raw in ["<script>alert", "<b id=", "alert(\"x\")", "'q'"] {
        assert!(!page.contains(raw), "{what}: raw {raw:?}");
    }
    for escaped in shown {
        assert!(page.contains(escaped), "{what}: no {escaped:?}");
    }
}

#[test]
fn hostile_experiment_run_and_parameter_text_is_escaped_by_the_templates_in_report_and_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    hostile_registry(&runs);
    let all = [ESCAPED_TEXT, ESCAPED_RUN_ID];

    let html = dir.path().join("report.html");
    let (ok, _, err) = support::run_in(&runs, &["report", "--html", html.to_str().unwrap()]);
    assert!(ok, "{err}");
    let report = std::fs::read_to_string(&html).unwrap();
    assert_escaped_by_the_templates("report", &report, &all);
    assert!(!report.contains("<script"), "the report has no script at all");
    // The swept parameter's values in the legend (`key=value`) and as a chart's tick labels
    // (plotters escapes the text it draws).
    assert!(report.contains(&format!("lr_schedule={ESCAPED_TEXT}")));
    let chart = &report[report.find("<figcaption>best test bpd8 by lr_schedule").unwrap()..];
    assert!(chart[..chart.find("</figure>").unwrap()].contains("&lt;script&gt;alert"));

    let (_server, addr) = serve(dir.path());
    let experiment = format!("/experiments/{}", pixelx::report::html::url_segment(HOSTILE_TEXT));
    for path in ["/", experiment.as_str(), "/runs/aaaaaaaaaaaa"] {
        let r = get(&addr, path);
        assert_eq!(r.status, 200, "{path}");
        let page = r.text();
        let shown: &[&str] = if path.starts_with("/runs") {
            &[ESCAPED_TEXT]
        } else {
            &all
        };
        assert_escaped_by_the_templates(path, &page, shown);
        // Only the dashboard's own script element.
        assert_eq!(page.matches("<script").count(), 1, "{path}");
    }
    // The run page's configuration lists the hostile parameter value, escaped.
    let run = get(&addr, "/runs/aaaaaaaaaaaa").text();
    assert!(run.contains(&format!("<tr><th>lr_schedule</th><td>{ESCAPED_TEXT}</td></tr>")));
    // An id that cannot name a run folder is shown as text, never linked.
    let front = get(&addr, "/").text();
    assert!(front.contains(&format!("</span>{ESCAPED_RUN_ID}</td>")));
}
