//! The integrity of a study and of what a dry run promises (issue 17): invalid proposals, the
//! in-flight runs of a coordinator that stops on an error, the count of trials to train, CPU
//! slots beyond the cores, and grid points that are the same model. Real binary, real MNIST.
//! Belongs here: a study's trials and what a dry run promises about them.

use std::path::{Path, PathBuf};

use crate::support::{run_in, tiny_experiment, TINY_MODEL_TOML};
use pixelx::registry::{Registry, RunFilter, RunSummary};

fn summaries(runs: &Path) -> Vec<RunSummary> {
    Registry::open_read_only(&Registry::default_path(runs))
        .unwrap()
        .summaries(&RunFilter::default())
        .unwrap()
}

/// A study file of tiny models: `space` holds the `[search.space]` lines.
fn study(dir: &Path, name: &str, method: &str, trials: usize, space: &str) -> PathBuf {
    let text = format!(
        "[experiment]\nname = \"{name}\"\ndataset = \"mnist\"\n[defaults]\nepochs = 1\n{TINY_MODEL_TOML}\
         hidden_ksize = 3\nepoch_samples = 0\ntrain_subset = 256\ntest_subset = 64\n\
         [search]\nmethod = \"{method}\"\ntrials = {trials}\n[search.space]\n{space}\n\
         [scheduler]\ndevices = \"cpu\"\nruns_per_device = 2\n"
    );
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, text).unwrap();
    file
}

/// hidden_fmaps = 8 is not a multiple of data_channels = 3: one of the four combinations.
const INVALID_SPACE: &str = "hidden_fmaps = { choice = [6, 8] }\ndata_channels = { choice = [1, 3] }";

/// BAD 1: a proposal valid axis by axis but not as a whole is a failed trial (with the
/// validation message, nothing trained, no run folder); the study goes on to its budget, and a
/// re-run neither retries it nor proposes more.
#[test]
fn an_invalid_proposal_is_a_failed_trial_and_the_study_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let file = study(dir.path(), "invalid", "tpe", 4, INVALID_SPACE);
    let file = file.to_str().unwrap();
    let (ok, stdout, stderr) = run_in(&runs, &["run", file]);
    assert!(ok, "the study finishes: {stdout}{stderr}");
    let all = summaries(&runs);
    assert_eq!(all.len(), 4, "the budget is spent: {stdout}");
    let failed: Vec<&RunSummary> = all.iter().filter(|r| r.status == "failed").collect();
    assert_eq!(failed.len(), 1, "{stdout}");
    let bad = failed[0];
    assert_eq!(bad.params["hidden_fmaps"], 8);
    assert_eq!(bad.params["data_channels"], 3);
    assert!(bad.trial.is_some());
    let error = bad.error.as_deref().unwrap_or("");
    assert!(error.contains("divisible by data_channels"), "{error}");
    assert!(bad.curves.epochs.is_empty(), "nothing trained");
    assert!(!runs.join(&bad.id).exists(), "no run folder for an invalid trial");
    assert_eq!(all.iter().filter(|r| r.status == "completed").count(), 3);
    assert!(stdout.contains("1 invalid"), "{stdout}");

    // A re-run trains nothing and leaves the invalid trial as it is.
    let (ok, stdout, stderr) = run_in(&runs, &["run", file]);
    assert!(ok, "{stdout}{stderr}");
    let again = summaries(&runs);
    assert_eq!(again.len(), 4);
    let bad_again = again.iter().find(|r| r.id == bad.id).unwrap();
    assert_eq!(bad_again.status, "failed");
    assert_eq!(bad_again.started_at, bad.started_at, "not retried");
    assert!(!runs.join(&bad.id).exists());
}

/// BAD 1: the sampler learns to avoid invalid regions (see `search::propose`'s unit test); here
/// the dry run warns that the space holds invalid combinations and names one.
#[test]
fn the_dry_run_names_an_invalid_combination_of_the_space() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let file = study(dir.path(), "warned", "tpe", 8, INVALID_SPACE);
    let (ok, stdout, stderr) = run_in(
        &runs,
        &["run", file.to_str().unwrap(), "--dry-run", "--no-calibrate"],
    );
    let out = format!("{stdout}{stderr}");
    assert!(ok, "{out}");
    assert!(
        out.contains("1 of the 4 configurations") && out.contains("data_channels=3, hidden_fmaps=8"),
        "{out}"
    );
    assert!(out.contains("divisible by data_channels"), "{out}");
    // A continuous axis is sampled instead of enumerated, and still found out.
    let file = study(
        dir.path(),
        "sampled",
        "tpe",
        8,
        &format!("{INVALID_SPACE}\nlearning_rate = {{ log_uniform = [1e-4, 1e-2] }}"),
    );
    let (ok, stdout, stderr) = run_in(
        &runs,
        &["run", file.to_str().unwrap(), "--dry-run", "--no-calibrate"],
    );
    let out = format!("{stdout}{stderr}");
    assert!(ok, "{out}");
    assert!(
        out.contains("data_channels=3") && out.contains("sampled"),
        "{out}"
    );
}

/// BAD 1: a coordinator that stops on an error settles its runs in flight (interrupted), and the
/// run it could not start goes back to the queue: none is left `running`.
#[test]
fn a_coordinator_stopping_on_an_error_leaves_no_run_running() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let text = tiny_experiment(
        "halt",
        3,
        2048,
        "hidden_ksize = [3, 5]",
        "devices = \"cpu\"\nruns_per_device = 2",
    );
    let file = dir.path().join("halt.toml");
    std::fs::write(&file, text).unwrap();
    let experiment = pixelx::config::Experiment::load(&file, &[]).unwrap();
    // The second run's folder cannot take its config: the coordinator fails to start it.
    let second = &experiment.runs[1].id;
    std::fs::create_dir_all(runs.join(second).join("config.toml")).unwrap();
    let (ok, stdout, stderr) = run_in(&runs, &["-q", "run", file.to_str().unwrap()]);
    assert!(!ok, "{stdout}{stderr}");
    let all = summaries(&runs);
    assert_eq!(all.len(), 2);
    for r in &all {
        assert_ne!(r.status, "running", "{} left running: {stdout}{stderr}", r.id);
    }
    let first = all.iter().find(|r| r.id == experiment.runs[0].id).unwrap();
    assert!(
        ["interrupted", "completed"].contains(&first.status.as_str()),
        "{}",
        first.status
    );
    let second = all.iter().find(|r| &r.id == second).unwrap();
    assert_eq!(second.status, "queued");
}

/// WEAK: a study's dry run counts what will really be trained: no more trials than the space
/// holds, and not the trials done already; its lines end where they should.
#[test]
fn a_study_dry_run_counts_what_will_be_trained() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let file = study(
        dir.path(),
        "count",
        "tpe",
        8,
        "hidden_ksize = { choice = [3, 5] }",
    );
    let file = file.to_str().unwrap();
    let dry = |extra: &[&str]| {
        let mut args = vec!["run", file, "--dry-run", "--no-calibrate"];
        args.extend(extra);
        let (ok, stdout, stderr) = run_in(&runs, &args);
        assert!(ok, "{stdout}{stderr}");
        stdout
    };
    let out = dry(&[]);
    assert!(
        out.contains("2 to train") && out.contains("the space holds 2"),
        "{out}"
    );
    assert!(out.contains("2 trials of the base configuration"), "{out}");
    assert!(!out.contains("8 trials"), "{out}");

    let (ok, stdout, stderr) = run_in(&runs, &["-q", "run", file, "--set", "search.trials=1"]);
    assert!(ok, "{stdout}{stderr}");
    let out = dry(&[]);
    assert!(out.contains("1 done") && out.contains("1 to train"), "{out}");
    assert!(out.contains("1 trial of the base configuration"), "{out}");
    for line in out.lines() {
        assert!(
            !line.contains("runnote") && line.matches("note:").count() <= 1,
            "two lines glued together: {line}"
        );
    }
}

/// BAD 6: CPU slots beyond the cores are capped with a warning, so the estimate is of the cores
/// really shared.
#[test]
fn cpu_slots_beyond_the_cores_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let text = tiny_experiment("slots", 1, 256, "hidden_ksize = [3, 5]", "devices = \"cpu\"");
    let file = dir.path().join("slots.toml");
    std::fs::write(&file, text).unwrap();
    let args = [
        "run",
        file.to_str().unwrap(),
        "--dry-run",
        "--set",
        "scheduler.runs_per_device=100000",
    ];
    let (ok, stdout, stderr) = run_in(&runs, &args);
    let out = format!("{stdout}{stderr}");
    assert!(ok, "{out}");
    let cores = pixelx::host::num_cores();
    assert!(!out.contains("on 100000 CPU slots"), "{out}");
    let slots = if cores == 1 {
        "on 1 CPU slot "
    } else {
        &format!("on {cores} CPU slots")
    };
    assert!(out.contains(slots), "the estimate is of the cores: {out}");
    assert!(
        out.contains("100000 CPU slots asked") && out.contains(&format!("{cores} core")),
        "{out}"
    );
}

/// WEAK: grid points that resolve to the same model (data_channels 0 is MNIST's 1; a test subset
/// of the whole test set is the whole test set) are named by the dry run and trained once.
#[test]
fn grid_points_of_the_same_model_train_once() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let text = tiny_experiment("same", 1, 256, "data_channels = [0, 1]", "devices = \"cpu\"");
    let file = dir.path().join("same.toml");
    std::fs::write(&file, &text).unwrap();
    let file = file.to_str().unwrap();
    let experiment = pixelx::config::Experiment::load(Path::new(file), &[]).unwrap();
    let (ok, stdout, stderr) = run_in(&runs, &["run", file, "--dry-run", "--no-calibrate"]);
    let out = format!("{stdout}{stderr}");
    assert!(ok, "{out}");
    assert!(out.contains("same model"), "{out}");
    assert!(out.contains("data_channels"), "{out}");
    // test_subset 0 and 10000 on MNIST's 10,000 test images (a dry run only: the full test set).
    let subset = tiny_experiment("subset", 1, 256, "test_subset = [0, 10000]", "devices = \"cpu\"");
    let subset_file = dir.path().join("subset.toml");
    std::fs::write(&subset_file, subset).unwrap();
    let args = [
        "run",
        subset_file.to_str().unwrap(),
        "--dry-run",
        "--no-calibrate",
    ];
    let (ok, stdout, stderr) = run_in(&runs, &args);
    let out = format!("{stdout}{stderr}");
    assert!(ok, "{out}");
    assert!(out.contains("same model") && out.contains("test_subset"), "{out}");

    let (ok, stdout, stderr) = run_in(&runs, &["-q", "run", file]);
    assert!(ok && stdout.contains("1 completed"), "{stdout}{stderr}");
    let all = summaries(&runs);
    assert_eq!(all.len(), 1, "trained once: {stdout}");
    assert!(
        experiment.runs.iter().any(|r| r.id == all[0].id),
        "the kept run keeps its id"
    );
}
