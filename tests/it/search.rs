//! Adaptive search and early stopping on real MNIST (tiny models): an ASHA sweep prunes some runs
//! and completes the rest, a TPE study proposes its trials and stops at its budget, and running
//! either file again trains nothing.
//! Belongs here: adaptive search methods and pruners on real sweeps.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::{self, registry_read_only, run_in, tiny_experiment};
use pixelx::registry::{RunFilter, RunStatus};

#[test]
fn an_asha_sweep_prunes_the_laggards_and_a_rerun_trains_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    // Best learning rates first, so the later runs meet a rung where better values are recorded.
    let grid = "learning_rate = [3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4]";
    let text = tiny_experiment("asha", 4, 512, grid, "devices = [\"cpu\", \"cpu\"]")
        + "\n[pruner]\nkind = \"asha\"\ngrace_epochs = 1\nreduction_factor = 3\n";
    let text = text.replace("lr_schedule = \"cosine\"", "lr_schedule = \"constant\"");
    let file = dir.path().join("asha.toml");
    std::fs::write(&file, text).unwrap();
    let (ok, stdout, stderr) = run_in(&runs, &["-q", "run", file.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");

    let reg = registry_read_only(&runs);
    let all = reg.summaries(&RunFilter::default()).unwrap();
    assert_eq!(all.len(), 6);
    let pruned: Vec<_> = all.iter().filter(|r| r.status == "pruned").collect();
    let completed = all.iter().filter(|r| r.status == "completed").count();
    assert!(!pruned.is_empty(), "some runs are pruned: {stdout}");
    assert!(completed >= 1, "the rest complete: {stdout}");
    assert_eq!(pruned.len() + completed, 6, "{stdout}");
    assert!(stdout.contains(&format!("{} pruned", pruned.len())), "{stdout}");
    for r in &pruned {
        let epochs = r.curves.epochs.len();
        assert!(
            (1..4).contains(&epochs),
            "{}: stopped early, after {epochs} epochs",
            r.id
        );
        let events = reg.events(&r.id).unwrap();
        let decision = events
            .iter()
            .find(|(s, _, d)| s == "decision" && d.as_deref().is_some_and(|d| d.starts_with("prune")))
            .unwrap_or_else(|| panic!("{}: no pruning decision in {events:?}", r.id));
        let detail = decision.2.as_deref().unwrap();
        assert!(
            detail.contains("asha rung") && detail.contains("test_bpd8"),
            "{detail}"
        );
        assert!(
            runs.join(&r.id).join("checkpoints/best.safetensors").exists(),
            "a pruned run keeps its checkpoints"
        );
    }

    // Again: finished and pruned runs count as done.
    let (ok, stdout, stderr) = run_in(&runs, &["run", file.to_str().unwrap()]);
    assert!(
        ok && stdout.contains("0 completed, 6 already done"),
        "{stdout}{stderr}"
    );

    // --best names a completed run, never a pruned one.
    let (ok, best, stderr) = run_in(&runs, &["report", "--best"]);
    let winner = best
        .split("run ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_default();
    assert!(
        ok && all.iter().any(|r| r.id == winner && r.status == "completed"),
        "{best}{stderr}"
    );

    // The reports carry the status, and a pruned run can be continued by hand.
    let (ok, json, _) = run_in(&runs, &["report", "--format", "json", "--status", "pruned"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(
        ok && v["runs"].as_array().unwrap().len() == pruned.len(),
        "{json}"
    );
    assert_eq!(v["runs"][0]["method"], "grid");
    let id = pruned[0].id.clone();
    let (ok, _, stderr) = run_in(&runs, &["resume", &id]);
    assert!(!ok && stderr.contains("--force"), "{stderr}");
    let (ok, stdout, stderr) = run_in(&runs, &["-q", "resume", "--force", &id]);
    assert!(ok && stdout.contains("completed"), "{stdout}{stderr}");
    assert_eq!(
        registry_read_only(&runs).run(&id).unwrap().unwrap().status,
        RunStatus::Completed
    );
}

#[test]
fn a_tpe_study_proposes_its_budget_of_distinct_trials_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let text = r#"
[experiment]
name = "tpe"
dataset = "mnist"
[defaults]
epochs = 2
{TINY}epoch_samples = 0
train_subset = 256
test_subset = 128
lr_schedule = "constant"
[search]
method = "tpe"
trials = 6
startup_trials = 3
seed = 4
parallel = 2
[search.space]
learning_rate = { log_uniform = [1e-4, 3e-2] }
hidden_ksize = { choice = [3, 5] }
[scheduler]
devices = ["cpu", "cpu"]
"#;
    let file = dir.path().join("tpe.toml");
    std::fs::write(&file, text.replace("{TINY}", support::TINY_MODEL_TOML)).unwrap();
    let (ok, stdout, stderr) = run_in(&runs, &["run", file.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("6 completed"), "{stdout}");
    for n in 0..6 {
        assert!(
            stderr.contains(&format!("trial {n}: run ")),
            "trial {n} announced: {stderr}"
        );
    }
    let reg = registry_read_only(&runs);
    let all = reg.summaries(&RunFilter::default()).unwrap();
    let mut trials: Vec<i64> = all.iter().filter_map(|r| r.trial).collect();
    trials.sort();
    assert_eq!(trials, (0..6).collect::<Vec<_>>(), "six numbered trials");
    assert!(all.iter().all(|r| r.method == "tpe" && r.status == "completed"));
    let mut configs: Vec<String> = all
        .iter()
        .map(|r| format!("{} {}", r.params["learning_rate"], r.params["hidden_ksize"]))
        .collect();
    configs.sort();
    configs.dedup();
    assert_eq!(configs.len(), 6, "distinct configurations");
    assert!(
        all.iter().all(|r| {
            let lr = r.params["learning_rate"].as_f64().unwrap();
            (1e-4..=3e-2).contains(&lr)
        }),
        "every proposal lies in the space"
    );

    // The budget is spent: running the file again proposes and trains nothing.
    let (ok, stdout, stderr) = run_in(&runs, &["-q", "run", file.to_str().unwrap()]);
    assert!(
        ok && stdout.contains("0 completed, 6 already done"),
        "{stdout}{stderr}"
    );
    // The JSON report carries the method and trial numbers; --best works on a study.
    let (ok, json, _) = run_in(&runs, &["report", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut numbers: Vec<i64> = v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["method"], "tpe", "{r}");
            r["trial"].as_i64().unwrap_or(-1)
        })
        .collect();
    numbers.sort();
    assert!(ok && numbers == (0..6).collect::<Vec<_>>(), "{json}");
    let (ok, best, _) = run_in(&runs, &["report", "--best"]);
    assert!(ok && best.contains("best of tpe: run "), "{best}");
    // The table shows the trial numbers.
    let (ok, table, _) = run_in(&runs, &["report", "--sort", "trial"]);
    assert!(
        ok && table.contains("0 (tpe)") && table.contains("5 (tpe)"),
        "{table}"
    );
}

/// Writes `<name>.toml`: a random search of tiny models over `space` (one axis line), with
/// `(epochs, train_subset)`, a budget of `trials`, on CPU (`scheduler`: more scheduler lines).
fn random_study(
    dir: &Path,
    name: &str,
    (epochs, train_subset): (u32, u32),
    trials: usize,
    space: &str,
    scheduler: &str,
) -> std::path::PathBuf {
    let text = format!(
        "[experiment]\nname = \"{name}\"\ndataset = \"mnist\"\n[defaults]\nepochs = {epochs}\n{}\
         epoch_samples = 0\ntrain_subset = {train_subset}\ntest_subset = 128\n\
         [search]\nmethod = \"random\"\ntrials = {trials}\n[search.space]\n{space}\n\
         [scheduler]\ndevices = \"cpu\"\n{scheduler}",
        support::TINY_MODEL_TOML
    );
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, text).unwrap();
    file
}

/// A space with fewer configurations than trials ends the study early, and says so once (the
/// scheduler asks for the next trial on every pass while a slot is free and runs train).
#[test]
fn an_exhausted_space_ends_the_study_with_one_warning() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let file = random_study(
        dir.path(),
        "one",
        (2, 1024),
        3,
        "hidden_ksize = { choice = [3] }",
        "runs_per_device = 2\n",
    );
    let (ok, stdout, stderr) = run_in(&runs, &["run", file.to_str().unwrap()]);
    assert!(ok && stdout.contains("1 completed"), "{stdout}{stderr}");
    assert_eq!(
        stderr.matches("holds no configuration not tried yet").count(),
        1,
        "{stderr}"
    );
}

/// A study re-run with another method keeps what proposed each recorded trial, says so, and
/// proposes the rest with the new method.
#[test]
fn recorded_trials_keep_the_method_that_proposed_them() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let file = random_study(
        dir.path(),
        "switch",
        (1, 256),
        2,
        "learning_rate = { log_uniform = [1e-4, 1e-2] }",
        "",
    );
    let file = file.to_str().unwrap();
    let (ok, stdout, stderr) = run_in(&runs, &["-q", "run", file]);
    assert!(ok && stdout.contains("2 completed"), "{stdout}{stderr}");
    let tpe = [
        "run",
        file,
        "--set",
        "search.method=tpe",
        "--set",
        "search.trials=3",
    ];
    let (ok, stdout, stderr) = run_in(&runs, &tpe);
    assert!(
        ok && stdout.contains("1 completed, 2 already done"),
        "{stdout}{stderr}"
    );
    assert!(
        stderr
            .contains("2 trial(s) of `switch` were proposed by random search and the file now asks for tpe"),
        "{stderr}"
    );
    let methods: BTreeMap<i64, String> = registry_read_only(&runs)
        .summaries(&RunFilter::default())
        .unwrap()
        .into_iter()
        .map(|r| (r.trial.unwrap(), r.method))
        .collect();
    let expected: BTreeMap<i64, String> = [(0, "random"), (1, "random"), (2, "tpe")]
        .into_iter()
        .map(|(t, m)| (t, m.to_owned()))
        .collect();
    assert_eq!(methods, expected);
}
