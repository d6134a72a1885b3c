//! Real sweeps: the scheduler, worker processes, the registry, re-runs and kill -9 recovery.
//! Belongs here: `pixelx run` of a grid through local workers, re-runs, kills and recovery.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::support;
use pixelx::registry::{Registry, RunFilter, RunStatus};
use rand::{Rng, SeedableRng};

/// Four tiny runs (two learning rates × two seeds) on two CPU slots.
fn experiment() -> String {
    support::tiny_experiment(
        "sweep_test",
        2,
        512,
        "learning_rate = [2e-3, 5e-3]\nseed = [1, 2]",
        "devices = [\"cpu\", \"cpu\"]\nruns_per_device = 1",
    )
}

fn setup(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("sweep.toml");
    std::fs::write(&file, experiment()).unwrap();
    file
}

fn sweep(dir: &Path, file: &Path, extra: &[&str]) -> std::process::Output {
    support::pixelx()
        .arg("--runs-dir")
        .arg(dir.join("runs"))
        .arg("-q")
        .arg("run")
        .arg(file)
        .args(extra)
        .output()
        .unwrap()
}

/// Largest number of runs that were `running` at the same moment, from the recorded events.
fn max_concurrency(reg: &Registry, ids: &[String]) -> usize {
    let mut edges = Vec::new();
    for id in ids {
        for (status, at, _) in reg.events(id).unwrap() {
            match status.as_str() {
                "running" => edges.push((at, 1i32)),
                "completed" | "failed" | "interrupted" | "diverged" => edges.push((at, -1)),
                _ => {}
            }
        }
    }
    edges.sort();
    let (mut now, mut max) = (0, 0);
    for (_, d) in edges {
        now += d;
        max = max.max(now);
    }
    max as usize
}

#[test]
fn a_sweep_over_two_cpu_slots_runs_each_point_once_and_reruns_only_new_points() {
    let dir = tempfile::tempdir().unwrap();
    let file = setup(dir.path());
    let out = sweep(dir.path(), &file, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reg = support::registry(&dir.path().join("runs"));
    let runs = reg.summaries(&RunFilter::default()).unwrap();
    assert_eq!(runs.len(), 4);
    let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
    for r in &runs {
        assert_eq!(
            (r.status.as_str(), r.device.as_deref()),
            ("completed", Some("cpu")),
            "{}",
            r.id
        );
        assert_eq!(
            r.best.map(|b| b.epoch),
            Some(2),
            "cosine decay: the last epoch is best"
        );
        let run = dir.path().join("runs").join(&r.id);
        assert!(run.join(r.checkpoint.as_deref().unwrap()).exists());
        assert!(run.join(r.samples.as_deref().unwrap()).exists());
    }
    assert_eq!(
        max_concurrency(&reg, &ids),
        2,
        "two slots: two at once, never three"
    );

    // Again: nothing trains.
    let out = sweep(dir.path(), &file, &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 completed, 4 already done"));
    for id in &ids {
        assert_eq!(
            reg.run(id).unwrap().unwrap().attempts,
            1,
            "{id} was not trained again"
        );
    }
    // One more grid value: only the two new points train.
    let out = sweep(
        dir.path(),
        &file,
        &["--set", "grid.learning_rate=[2e-3, 5e-3, 1e-2]"],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 completed, 4 already done"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let runs = reg.summaries(&RunFilter::default()).unwrap();
    assert_eq!(runs.len(), 6);
    assert!(runs.iter().all(|r| r.status == "completed"));

    // The report and its HTML page cover them.
    let html = dir.path().join("report.html");
    let out = support::pixelx()
        .arg("--runs-dir")
        .arg(dir.path().join("runs"))
        .args(["report", "--best", "--html", html.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("best of sweep_test: run "), "{text}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("data:image/png;base64,"));
    assert!(
        !page.contains("src=\"http") && !page.contains("<script") && !page.contains("<link"),
        "self-contained"
    );
}

/// Kills the scheduler and every process working under `dir` with SIGKILL.
fn kill_all(scheduler: &mut std::process::Child, dir: &Path) {
    let _ = scheduler.kill();
    let _ = scheduler.wait();
    let marker = dir.display().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&marker) && pid as u32 != std::process::id() {
            unsafe {
                libc_kill(pid, 9);
            }
        }
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// Runs the experiment `write` writes, kills it and all its workers with SIGKILL after a random
/// delay in `delays` (ms), runs it again to the end, and hands the registry to `check`; `trials`
/// times, each in a fresh folder. Callers draw the delays from within an undisturbed run's wall
/// time ([`within`]), so that the kills land while there is work left.
fn kill_and_rerun(
    trials: usize,
    seed: u64,
    delays: std::ops::Range<u64>,
    write: impl Fn(&Path) -> std::path::PathBuf,
    check: impl Fn(&Registry, &str),
) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut killed_mid_sweep = 0;
    for trial in 0..trials {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path());
        let mut scheduler = support::pixelx()
            .arg("--runs-dir")
            .arg(dir.path().join("runs"))
            .args(["-q", "run", file.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let delay = rng.gen_range(delays.clone());
        std::thread::sleep(Duration::from_millis(delay));
        kill_all(&mut scheduler, dir.path());
        let torn = tear_journal_tails(&dir.path().join("runs"), &mut rng);
        let what = format!("trial {trial} (kill after {delay} ms, {torn} journal tail(s) torn)");
        let before = run_states(dir.path());
        let out = sweep(dir.path(), &file, &[]);
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // A kill that landed after the sweep ended proves nothing; count the ones that did not.
        if run_states(dir.path()) != before {
            killed_mid_sweep += 1;
        }
        check(&support::registry(&dir.path().join("runs")), &what);
        assert_eq!(duplicated_steps(dir.path()), Vec::<String>::new(), "{what}");
    }
    eprintln!("{killed_mid_sweep} of {trials} kills landed while there was work left");
    assert!(
        killed_mid_sweep * 3 >= trials,
        "only {killed_mid_sweep} of {trials} kills landed while there was work left: \
         shorten the delays"
    );
}

/// A kill -9 can land in the middle of a journal line. Half the journals (drawn from `rng`) get
/// the first half of their last line appended again, without its newline, as such a kill leaves
/// it; the next worker must cut it, and ingestion must never record a step twice. Returns how
/// many were torn.
fn tear_journal_tails(runs: &Path, rng: &mut rand_chacha::ChaCha8Rng) -> usize {
    let Ok(folders) = std::fs::read_dir(runs) else {
        return 0;
    };
    let mut torn = 0;
    for folder in folders.flatten() {
        let journal = folder.path().join("journal.jsonl");
        let Ok(text) = std::fs::read_to_string(&journal) else {
            continue;
        };
        let Some(last) = text.lines().last().filter(|l| l.len() > 8) else {
            continue;
        };
        if rng.gen_bool(0.5) {
            let half = &last.as_bytes()[..last.len() / 2];
            let mut file = std::fs::OpenOptions::new().append(true).open(&journal).unwrap();
            std::io::Write::write_all(&mut file, half).unwrap();
            torn += 1;
        }
    }
    torn
}

/// Every (run, metric, step) the registry holds more than once, as `run/metric/step`.
fn duplicated_steps(dir: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(dir.join("runs/registry.sqlite")).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT run_id || '/' || name || '/' || step FROM metrics
             GROUP BY run_id, name, step HAVING COUNT(*) > 1",
        )
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Delays from 300 ms to 75% of `took`, the undisturbed sweep's wall time.
fn within(took: Duration) -> std::ops::Range<u64> {
    let ms = took.as_millis() as u64;
    300..(ms * 3 / 4).max(600)
}

/// Each recorded run's status, or `None` while the coordinator has not created the registry.
fn run_states(dir: &Path) -> Option<Vec<(String, String)>> {
    let path = dir.join("runs/registry.sqlite");
    if !path.exists() {
        return None;
    }
    let reg = Registry::open_read_only(&path).ok()?;
    let runs = reg.summaries(&RunFilter::default()).ok()?;
    Some(runs.into_iter().map(|s| (s.id, s.status.to_string())).collect())
}

#[test]
fn kill_dash_nine_at_random_moments_loses_and_duplicates_nothing() {
    let base = tempfile::tempdir().unwrap();
    let file = setup(base.path());
    let start = std::time::Instant::now();
    let out = sweep(base.path(), &file, &[]);
    let took = start.elapsed();
    assert!(out.status.success());
    let undisturbed = support::results(&support::registry(&base.path().join("runs")));
    assert_eq!(undisturbed.len(), 4);
    kill_and_rerun(10, 2024, within(took), setup, |reg, what| {
        for s in reg.summaries(&RunFilter::default()).unwrap() {
            assert_eq!(s.status, "completed", "{what}: run {}", s.id);
            assert_eq!(reg.run(&s.id).unwrap().unwrap().status, RunStatus::Completed);
        }
        assert_eq!(support::results(reg), undisturbed, "{what}: metrics differ");
    });
}

const TPE_ASHA: &str = r#"
[experiment]
name = "tpe_asha"
dataset = "mnist"

[defaults]
epochs = 3
{TINY}epoch_samples = 0
train_subset = 512
test_subset = 128
lr_schedule = "constant"

[search]
method = "tpe"
trials = 6
startup_trials = 3
seed = 11
parallel = 1

[search.space]
learning_rate = { log_uniform = [1e-4, 3e-2] }
hidden_ksize = { choice = [3, 5] }

[pruner]
kind = "asha"
grace_epochs = 1
reduction_factor = 2

[scheduler]
devices = "cpu"
"#;

fn tpe_asha() -> String {
    TPE_ASHA.replace("{TINY}", support::TINY_MODEL_TOML)
}

/// Each run's status and trial number, as a study that was run to the end left them.
fn study(reg: &Registry) -> BTreeMap<String, (String, Option<i64>)> {
    reg.summaries(&RunFilter::default())
        .unwrap()
        .into_iter()
        .map(|s| (s.id, (s.status.to_string(), s.trial)))
        .collect()
}

/// A TPE study with ASHA, one run at a time, killed with -9 at random moments and run again:
/// it proposes the same trials, prunes the same runs, and records the same metrics as a study
/// that was never disturbed.
#[test]
fn a_killed_tpe_asha_study_proposes_and_prunes_the_same_runs_when_run_again() {
    let write = |dir: &Path| {
        let file = dir.join("tpe.toml");
        std::fs::write(&file, tpe_asha()).unwrap();
        file
    };
    let base = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    let out = sweep(base.path(), &write(base.path()), &[]);
    let took = start.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reg = support::registry(&base.path().join("runs"));
    let undisturbed = (study(&reg), support::results(&reg));
    assert_eq!(undisturbed.0.len(), 6);
    assert!(
        undisturbed.0.values().any(|(s, _)| s == "pruned"),
        "the study prunes something: {:?}",
        undisturbed.0
    );

    kill_and_rerun(3, 7, within(took), write, |reg, what| {
        assert_eq!(
            (study(reg), support::results(reg)),
            undisturbed,
            "{what}: the study differs"
        );
    });
}
