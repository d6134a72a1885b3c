//! The registry: journals ingested by eight coordinators at once, claims, statuses, old
//! registries.
//! Belongs here: the SQLite registry through its library API (ingestion, claims, migrations).

use std::path::Path;

use crate::support;
use crate::support::synthetic::{self, SyntheticEpoch};
use pixelx::config::{Experiment, ExperimentInfo, RunConfig};
use pixelx::journal::{self, Event, FinalStatus};
use pixelx::registry::{Registry, RunFilter, RunStatus};

const STEPS: i64 = 3000;
const EPOCHS: u32 = 5;

/// Writes the journal a worker leaves after training a run of `EPOCHS` epochs to the end.
fn write_finished_journal(run_dir: &Path) {
    std::fs::create_dir_all(run_dir).unwrap();
    journal::append(
        run_dir,
        Event::Started {
            pid: 1,
            host: "node".into(),
            device: "cpu".into(),
            job: None,
            checkpoint: None,
            epochs_done: 0,
            global_step: 0,
            steps_per_epoch: STEPS / EPOCHS as i64,
            history: Vec::new(),
            precision: None,
        },
    )
    .unwrap();
    let epochs: Vec<SyntheticEpoch> = (0..EPOCHS)
        .map(|e| SyntheticEpoch {
            bpd8: 7.1 + e as f64 * 0.01,
            samples: false,
        })
        .collect();
    let completed = Some((FinalStatus::Completed, None));
    synthetic::write_journal(run_dir, STEPS, &epochs, |s| 1.0 / s as f64, completed);
}

/// Eight experiments whose runs' workers finished while no coordinator watched: eight
/// `pixelx run` processes at once ingest them into one registry, and no row is lost.
#[test]
fn eight_coordinators_ingest_into_one_registry_without_losing_rows() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let mut files = Vec::new();
    let mut ids = Vec::new();
    for i in 0..8 {
        let file = dir.path().join(format!("e{i}.toml"));
        let text = support::tiny_experiment(
            &format!("stress{i}"),
            EPOCHS,
            512,
            "seed = [1]",
            "devices = \"cpu\"",
        );
        std::fs::write(&file, text).unwrap();
        let exp = Experiment::load(&file, &[]).unwrap();
        let id = exp.runs[0].id.clone();
        write_finished_journal(&runs.join(&id));
        ids.push(id);
        files.push(file);
    }
    let children: Vec<_> = files
        .iter()
        .map(|f| {
            support::pixelx()
                .arg("--runs-dir")
                .arg(&runs)
                .args(["-q", "run"])
                .arg(f)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "a coordinator failed: {text}");
        assert!(
            text.contains("0 completed, 1 already done"),
            "nothing trained again: {text}"
        );
    }
    let registry = support::registry(&runs);
    for id in &ids {
        let history = registry.metric_history(id).unwrap();
        let steps = history.iter().filter(|m| m.name == "train_loss").count() as i64;
        let epochs = history.iter().filter(|m| m.name == "test_bpd8").count() as u32;
        assert_eq!((steps, epochs), (STEPS, EPOCHS), "run {id} lost rows");
        let row = registry.run(id).unwrap().unwrap();
        assert_eq!(row.status, RunStatus::Completed);
        assert_eq!(row.attempts, 0, "{id}: ingested, never started here");
    }
    let summaries = registry.summaries(&RunFilter::default()).unwrap();
    assert_eq!(summaries.len(), 8);
    assert!(summaries.iter().all(|s| s.best.is_some_and(|b| b.epoch == 1)));
}

fn info(name: &str, description: &str) -> ExperimentInfo {
    ExperimentInfo::named(name, description)
}

#[test]
fn a_run_is_claimed_once_and_statuses_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::open(&dir.path().join("r.sqlite")).unwrap();
    let exp = registry
        .upsert_experiment(&info("e", "<b>"), None, Default::default())
        .unwrap();
    registry
        .add_run(exp, "a", &RunConfig::default(), dir.path(), None)
        .unwrap();
    assert_eq!(
        registry
            .add_run(exp, "a", &RunConfig::default(), dir.path(), None)
            .unwrap(),
        RunStatus::Queued
    );
    assert!(registry.claim_run("a", "cpu", None).unwrap());
    assert!(
        !registry.claim_run("a", "cpu", None).unwrap(),
        "a running run cannot be claimed again"
    );
    // This process is alive, so the run is not stale.
    assert!(registry.recover_stale(None).unwrap().is_empty());
    registry
        .set_status("a", RunStatus::Diverged, Some("loss NaN"))
        .unwrap();
    let row = registry.run("a").unwrap().unwrap();
    assert_eq!(
        (row.status, row.error.as_deref(), row.attempts),
        (RunStatus::Diverged, Some("loss NaN"), 1)
    );
    let events: Vec<String> = registry.events("a").unwrap().into_iter().map(|e| e.0).collect();
    assert_eq!(events, ["queued", "diverged"]);
}

/// A registry of the first schema (with a run recorded as pixelx did then) opens, migrates, and
/// keeps its rows; a read-only open of it writes nothing when it is current.
#[test]
fn an_old_registry_is_migrated_and_keeps_its_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE experiments (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, description TEXT NOT NULL DEFAULT '',
                 dataset TEXT, file TEXT, created_at TEXT NOT NULL);
             CREATE TABLE runs (id TEXT PRIMARY KEY, experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
                 config_json TEXT NOT NULL, config_hash TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN
                 ('queued', 'running', 'completed', 'failed', 'diverged', 'interrupted')), run_dir TEXT NOT NULL,
                 device TEXT, host TEXT, pid INTEGER, attempts INTEGER NOT NULL DEFAULT 0, heartbeat_at TEXT,
                 created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT, error TEXT);
             CREATE INDEX runs_by_experiment ON runs(experiment_id, status);
             CREATE TABLE params (run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, key TEXT NOT NULL,
                 value_text TEXT NOT NULL, value_num REAL, PRIMARY KEY (run_id, key));
             CREATE TABLE metrics (run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, name TEXT NOT NULL,
                 step INTEGER NOT NULL, epoch INTEGER, value REAL NOT NULL);
             CREATE TABLE checkpoints (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                 path TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL, epoch INTEGER NOT NULL,
                 is_best INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
             CREATE TABLE samples (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                 path TEXT NOT NULL, epoch INTEGER NOT NULL, labels TEXT NOT NULL, created_at TEXT NOT NULL);
             CREATE TABLE run_events (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                 status TEXT NOT NULL, at TEXT NOT NULL, detail TEXT);
             PRAGMA user_version = 1;
             INSERT INTO experiments VALUES (1, 'old', '', 'mnist', NULL, '2026-01-01T00:00:00Z');
             INSERT INTO runs (id, experiment_id, config_json, config_hash, status, run_dir, created_at)
                 VALUES ('abc', 1, '{\"epochs\": 3}', 'h', 'completed', 'runs/abc', '2026-01-01T00:00:00Z');
             INSERT INTO metrics VALUES ('abc', 'test_bpd8', 1, 1, 7.5);
             INSERT INTO checkpoints (run_id, path, size, sha256, epoch, is_best, created_at)
                 VALUES ('abc', 'runs/abc/checkpoints/epoch-0001.safetensors', 1, 'x', 1, 1, '2026-01-01T00:00:00Z');",
        )
        .unwrap();
    }
    let registry = Registry::open_read_only(&path).unwrap();
    assert_eq!(
        registry.schema_version().unwrap(),
        pixelx::registry::schema::MIGRATIONS.len() as i64
    );
    let runs = registry.summaries(&RunFilter::default()).unwrap();
    assert_eq!(runs.len(), 1);
    // The results rows backfilled by the migration name their experiment (schema v7), so the
    // rank index of large views holds the old run too.
    assert_eq!(registry.ranked_count("old").unwrap(), 1);
    assert_eq!(registry.best_ids("old", 5).unwrap(), (vec!["abc".to_owned()], 1));
    assert_eq!(runs[0].best.map(|b| b.bpd8), Some(7.5));
    assert_eq!(
        runs[0].params["epochs"], 3,
        "stored values kept, others defaulted"
    );
    assert_eq!(runs[0].method, "grid");
    assert_eq!(
        runs[0].checkpoint.as_deref(),
        Some("checkpoints/best.safetensors")
    );
    let mut registry = Registry::open(&path).unwrap();
    registry
        .set_status("abc", RunStatus::Pruned, Some("asha"))
        .unwrap();
    assert_eq!(registry.run("abc").unwrap().unwrap().status, RunStatus::Pruned);
}

#[test]
fn runs_recorded_before_a_parameter_existed_show_its_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.sqlite");
    let mut registry = Registry::open(&path).unwrap();
    let exp = registry
        .upsert_experiment(&info("e", ""), None, Default::default())
        .unwrap();
    registry
        .add_run(exp, "old", &RunConfig::default(), dir.path(), None)
        .unwrap();
    // Rewrite the stored config as a registry from before `precision` existed holds it.
    let db = rusqlite::Connection::open(&path).unwrap();
    let changed = db
        .execute(
            "UPDATE runs SET config_json = json_remove(config_json, '$.precision')",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let json: String = db
        .query_row("SELECT config_json FROM runs", [], |r| r.get(0))
        .unwrap();
    assert!(!json.contains("precision"));

    let filter = RunFilter {
        conditions: vec![("precision".into(), "fp32".into())],
        ..RunFilter::default()
    };
    let runs = registry.summaries(&filter).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].params["precision"], "fp32");

    // A run recorded now carries the key; the single-run filter returns just that run.
    let bf16 = RunConfig {
        precision: pixelx::precision::Precision::Bf16,
        ..RunConfig::default()
    };
    registry.add_run(exp, "new", &bf16, dir.path(), None).unwrap();
    let one = registry.summaries(&RunFilter::run("new")).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(
        (one[0].id.as_str(), &one[0].params["precision"]),
        ("new", &"bf16".into())
    );
    assert_eq!(registry.summaries(&RunFilter::default()).unwrap().len(), 2);
}

/// A journal holding undefined values (a learning rate or test loss that overflowed, written as
/// JSON `null`) is ingested with those values left out: it never wedges the registry.
#[test]
fn undefined_values_in_a_journal_do_not_block_ingestion() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::open(&dir.path().join("r.sqlite")).unwrap();
    let exp = registry
        .upsert_experiment(&info("e", ""), None, Default::default())
        .unwrap();
    registry
        .add_run(exp, "nan", &RunConfig::default(), dir.path(), None)
        .unwrap();
    let run_dir = dir.path().join("nan");
    let epochs = [SyntheticEpoch {
        bpd8: f64::NAN,
        samples: false,
    }];
    synthetic::write_journal(&run_dir, 3, &epochs, |_| f64::INFINITY * 0.0, None);
    let read = registry.ingest("nan", &run_dir).unwrap();
    assert!(read.events > 0);
    let history = registry.metric_history("nan").unwrap();
    assert!(history.iter().all(|m| !m.value.is_nan()));
    assert!(
        history.iter().any(|m| m.name == "lr"),
        "the defined values are kept"
    );
}

/// A run and its results row as a pixelx of schema v6 writes them: the row names no experiment.
fn insert_v6_run(conn: &rusqlite::Connection, id: &str, bpd8: f64) {
    conn.execute(
        "INSERT INTO runs (id, experiment_id, config_json, config_hash, status, run_dir, created_at)
         VALUES (?1, 1, '{\"epochs\": 1}', ?1, 'completed', 'runs/' || ?1, '2026-01-01T00:00:00Z')",
        [id],
    )
    .unwrap();
    conn.execute(
        "INSERT OR REPLACE INTO run_results (run_id, best_epoch, best_bpd8, best_bpd) VALUES (?1, 1, ?2, ?3)",
        rusqlite::params![id, bpd8, bpd8 - 0.5],
    )
    .unwrap();
}

/// A registry of schema v6 (results rows without their experiment) is migrated with its rows
/// given their experiment, so the rank index holds them; and a results row written later
/// without its experiment (an older pixelx still running a sweep on the migrated file) is given
/// it too, instead of vanishing from the views of a large experiment.
#[test]
fn a_v6_registry_is_ranked_after_migration_and_rows_without_experiment_are_filled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v6.sqlite");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for (i, sql) in pixelx::registry::schema::MIGRATIONS.iter().take(6).enumerate() {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", i + 1).unwrap();
        }
        conn.execute(
            "INSERT INTO experiments (id, name, created_at) VALUES (1, 'old', '2026-01-01T00:00:00Z')",
            [],
        )
        .unwrap();
        insert_v6_run(&conn, "abc", 7.5);
    }
    let registry = Registry::open(&path).unwrap();
    assert_eq!(
        registry.schema_version().unwrap(),
        pixelx::registry::schema::MIGRATIONS.len() as i64
    );
    assert_eq!(registry.ranked_count("old").unwrap(), 1, "v7's backfill");
    assert_eq!(registry.best_ids("old", 5).unwrap(), (vec!["abc".to_owned()], 1));
    drop(registry);
    insert_v6_run(&rusqlite::Connection::open(&path).unwrap(), "abd", 7.0);
    let registry = Registry::open_read_only(&path).unwrap();
    assert_eq!(registry.ranked_count("old").unwrap(), 2, "the late row is ranked");
    assert_eq!(
        registry.best_ids("old", 5).unwrap(),
        (vec!["abd".to_owned(), "abc".to_owned()], 2)
    );
}

/// Schema v9 records the precision a run trained in. Runs of an older registry that started
/// used their config's precision (fp32 when the config predates the key); a run yet to start
/// has none until its worker says.
#[test]
fn a_v8_registry_gets_the_precision_its_started_runs_used() {
    use pixelx::precision::Precision;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v8.sqlite");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for (i, sql) in pixelx::registry::schema::MIGRATIONS.iter().take(8).enumerate() {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", i + 1).unwrap();
        }
        conn.execute_batch(
            "INSERT INTO experiments (id, name, created_at) VALUES (1, 'old', '2026-01-01T00:00:00Z');
             INSERT INTO runs (id, experiment_id, config_json, config_hash, status, run_dir, created_at, started_at)
             VALUES ('nokey', 1, '{\"epochs\": 1}', 'a', 'completed', 'runs/nokey', '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z'),
                    ('bf16', 1, '{\"precision\": \"bf16\"}', 'b', 'interrupted', 'runs/bf16', '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z'),
                    ('queued', 1, '{\"precision\": \"fp32\"}', 'c', 'queued', 'runs/queued', '2026-01-01T00:00:00Z', NULL);",
        )
        .unwrap();
    }
    let registry = Registry::open_read_only(&path).unwrap();
    let used = |id: &str| registry.run(id).unwrap().unwrap().precision;
    assert_eq!(used("nokey"), Some(Precision::Fp32));
    assert_eq!(used("bf16"), Some(Precision::Bf16));
    assert_eq!(used("queued"), None);
    let old = registry.run("nokey").unwrap().unwrap();
    assert_eq!(
        old.config.precision,
        Precision::Fp32,
        "a config without the key is fp32"
    );
}
