//! The registry under concurrent writers: eight real processes record at once.

use std::path::Path;

use pixelx::config::{ExperimentInfo, RunConfig};
use pixelx::metrics::EvalMetrics;
use pixelx::registry::{Registry, RegistryObserver, RunFilter, RunStatus};
use pixelx::train::{EpochRecord, Observer};

const STEPS: i64 = 3000;
const EPOCHS: u32 = 5;

/// Not a test on its own: the body of each writer process of the test below, which starts this
/// test binary again with `PIXELX_WRITER` set. Without it, it returns at once.
#[test]
fn helper_writer_process() {
    let Ok(spec) = std::env::var("PIXELX_WRITER") else {
        return;
    };
    let (path, run_id) = spec.split_once('|').unwrap();
    let mut registry = Registry::open(Path::new(path)).unwrap();
    assert!(registry.claim_run(run_id, "cpu").unwrap());
    let mut obs = RegistryObserver::new(registry, run_id);
    let test = EvalMetrics {
        nll: 0.1,
        bpd: 0.2,
        bpd8: 7.2,
    };
    for epoch in 1..=EPOCHS {
        for s in 0..STEPS / EPOCHS as i64 {
            let step = (epoch as i64 - 1) * (STEPS / EPOCHS as i64) + s + 1;
            obs.on_step(step, 1.0 / step as f64, 1e-3);
        }
        let record = EpochRecord {
            epoch,
            train_loss: 0.5,
            test,
            learning_rate: 1e-3,
            images_per_sec: 1.0,
            seconds: 1.0,
        };
        obs.before_checkpoint();
        obs.on_epoch(&record, Path::new("/nonexistent.safetensors"), None, epoch == 1);
    }
    let mut registry = obs.finish().unwrap();
    registry.set_status(run_id, RunStatus::Completed, None).unwrap();
}

#[test]
fn eight_processes_write_to_one_registry_without_losing_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.sqlite");
    let mut registry = Registry::open(&path).unwrap();
    assert_eq!(registry.schema_version().unwrap(), 1);
    let info = ExperimentInfo {
        name: "stress".into(),
        description: String::new(),
        dataset: None,
    };
    let exp = registry.upsert_experiment(&info, None).unwrap();
    let ids: Vec<String> = (0..8).map(|i| format!("run{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let config = RunConfig {
            seed: i as u64,
            ..RunConfig::default()
        };
        assert_eq!(
            registry.add_run(exp, id, &config, &dir.path().join(id)).unwrap(),
            RunStatus::Queued
        );
    }
    let children: Vec<_> = ids
        .iter()
        .map(|id| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "helper_writer_process",
                    "--exact",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env("PIXELX_WRITER", format!("{}|{id}", path.display()))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "a writer failed: {text}");
        assert!(!text.contains("locked"), "{text}");
    }
    let registry = Registry::open(&path).unwrap();
    for id in &ids {
        let history = registry.metric_history(id).unwrap();
        let steps = history.iter().filter(|(n, ..)| n == "train_loss").count() as i64;
        let epochs = history.iter().filter(|(n, ..)| n == "test_bpd8").count() as u32;
        assert_eq!((steps, epochs), (STEPS, EPOCHS), "run {id} lost rows");
        assert_eq!(registry.run(id).unwrap().unwrap().status, RunStatus::Completed);
    }
    let summaries = registry.summaries(&RunFilter::default()).unwrap();
    assert_eq!(summaries.len(), 8);
    assert!(summaries.iter().all(|s| s.best.is_some_and(|b| b.epoch == 1)));
}

#[test]
fn a_run_is_claimed_once_and_statuses_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::open(&dir.path().join("r.sqlite")).unwrap();
    let info = ExperimentInfo {
        name: "e".into(),
        description: "<b>".into(),
        dataset: None,
    };
    let exp = registry.upsert_experiment(&info, None).unwrap();
    registry
        .add_run(exp, "a", &RunConfig::default(), dir.path())
        .unwrap();
    assert_eq!(
        registry
            .add_run(exp, "a", &RunConfig::default(), dir.path())
            .unwrap(),
        RunStatus::Queued
    );
    assert!(registry.claim_run("a", "cpu").unwrap());
    assert!(
        !registry.claim_run("a", "cpu").unwrap(),
        "a running run cannot be claimed again"
    );
    // This process is alive, so the run is not stale.
    assert!(registry
        .recover_stale(std::time::Duration::from_secs(1))
        .unwrap()
        .is_empty());
    registry
        .set_status("a", RunStatus::Diverged, Some("loss NaN"))
        .unwrap();
    let row = registry.run("a").unwrap().unwrap();
    assert_eq!(
        (row.status, row.error.as_deref(), row.attempts),
        (RunStatus::Diverged, Some("loss NaN"), 1)
    );
    let events: Vec<String> = registry.events("a").unwrap().into_iter().map(|e| e.0).collect();
    assert_eq!(events, ["queued", "running", "diverged"]);
}

#[test]
fn runs_recorded_before_a_parameter_existed_show_its_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.sqlite");
    let mut registry = Registry::open(&path).unwrap();
    let info = ExperimentInfo {
        name: "e".into(),
        description: String::new(),
        dataset: None,
    };
    let exp = registry.upsert_experiment(&info, None).unwrap();
    registry
        .add_run(exp, "old", &RunConfig::default(), dir.path())
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
    registry.add_run(exp, "new", &bf16, dir.path()).unwrap();
    let one = registry.summaries(&RunFilter::run("new")).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(
        (one[0].id.as_str(), &one[0].params["precision"]),
        ("new", &"bf16".into())
    );
    assert_eq!(registry.summaries(&RunFilter::default()).unwrap().len(), 2);
}
