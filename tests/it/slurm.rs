//! The Slurm backend against a real single-node Slurm cluster started on this machine
//! (`scripts/slurm-local.sh`): sweeps, preemption and requeue, a coordinator killed with -9,
//! workers that die, cancelled jobs, and bad settings. One test, because the scenarios share one
//! cluster, which the test starts and stops itself.
//! Belongs here: anything that needs the Slurm cluster (add a scenario to the one test).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::support::cluster::Cluster;
use crate::support::{self, pixelx, tiny_experiment, wait_for, Results, SIGKILL};
use pixelx::registry::{Registry, RunFilter, RunStatus};

fn experiment(dir: &Path, name: &str, images: u32, backend: &str, extra: &str) -> PathBuf {
    let scheduler = match backend {
        "slurm" => format!(
            "backend = \"slurm\"\nretries = 1\n[scheduler.slurm]\ncpus_per_run = 1\nmax_jobs = 2\n{extra}"
        ),
        _ => format!("devices = [\"cpu\", \"cpu\"]\nretries = 1\n{extra}"),
    };
    let text = tiny_experiment(
        name,
        2,
        images,
        "learning_rate = [2e-3, 5e-3]\nseed = [1, 2]",
        &scheduler,
    );
    let file = dir.join(format!("{name}-{backend}.toml"));
    std::fs::write(&file, text).unwrap();
    file
}

fn output(cmd: &mut Command) -> (bool, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    (
        status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    )
}

fn results(runs: &Path) -> Results {
    support::results(&support::registry_read_only(runs))
}

/// Starts `pixelx run` of `file` in the background.
fn start_sweep(cluster: &Cluster, runs: &Path, file: &Path) -> Child {
    cluster
        .pixelx(runs)
        .args(["-q", "run"])
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a background sweep: (success, stdout and stderr).
fn finished(sweep: Child) -> (bool, String) {
    let out = sweep.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The Slurm job ids each run was submitted as (one `job-<id>.out` per job).
fn job_ids(runs: &Path, id: &str) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(runs.join(id).join("slurm"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            Some(name.strip_prefix("job-")?.strip_suffix(".out")?.to_owned())
        })
        .collect();
    ids.sort();
    ids
}

fn status_of(runs: &Path, id: &str) -> Option<RunStatus> {
    Registry::open_read_only(&runs.join("registry.sqlite"))
        .ok()?
        .run(id)
        .ok()?
        .map(|r| r.status)
}

/// Waits until a run of `runs` has journalled training steps (inside its first epoch when
/// `mid_epoch`, for a checkpoint there to matter); returns its id and job.
fn first_training_run(runs: &Path, mid_epoch: bool) -> (String, String) {
    let reg_path = runs.join("registry.sqlite");
    let mut found = None;
    assert!(
        wait_for(Duration::from_secs(120), || {
            let Ok(reg) = Registry::open_read_only(&reg_path) else {
                return false;
            };
            let Ok(all) = reg.summaries(&RunFilter::default()) else {
                return false;
            };
            found = all.into_iter().find_map(|s| {
                let p = s.progress.as_ref()?;
                let row = reg.run(&s.id).ok()??;
                let job = row.job?;
                let training = p.step_in_epoch > 2 || p.epoch > 1;
                (training && (!mid_epoch || p.epoch == 1)).then(|| (s.id.clone(), job))
            });
            found.is_some()
        }),
        "no run started training"
    );
    found.unwrap()
}

#[test]
fn the_slurm_backend_keeps_every_guarantee_on_a_real_cluster() {
    let cluster = Cluster::up(6927);
    let base = tempfile::tempdir().unwrap();

    // The reference: the same sweep on the local backend.
    let local_runs = base.path().join("local");
    let file = experiment(base.path(), "same", 1024, "local", "");
    let (ok, text) = output(
        pixelx()
            .arg("--runs-dir")
            .arg(&local_runs)
            .args(["-q", "run"])
            .arg(&file),
    );
    assert!(ok, "{text}");
    let local = results(&local_runs);
    assert_eq!(local.len(), 4);

    a_sweep_through_slurm_equals_the_local_one(&cluster, base.path(), &local);
    let longer = preemption_and_requeue_resume_exactly(&cluster, base.path());
    a_killed_coordinator_reattaches_without_submitting_twice(&cluster, base.path(), &longer);
    dead_workers_fail_with_slurms_reason_and_cancelled_jobs_resume(&cluster, base.path());
    bad_settings_fail_clearly_and_submit_nothing(&cluster, base.path());
    assert!(
        cluster.pixelx_jobs().is_empty(),
        "jobs left: {:?}",
        cluster.pixelx_jobs()
    );
}

fn a_sweep_through_slurm_equals_the_local_one(cluster: &Cluster, base: &Path, local: &Results) {
    let runs = base.join("slurm");
    let file = experiment(base, "same", 1024, "slurm", "");
    let (ok, text) = output(cluster.pixelx(&runs).args(["run"]).arg(&file));
    assert!(ok, "{text}");
    assert!(text.contains("4 completed"), "{text}");
    let slurm = results(&runs);
    // Off a terminal, the display logs each run's job: submitted, then on the node.
    for id in slurm.keys() {
        let job = &job_ids(&runs, id)[0];
        assert!(
            text.contains(&format!("{id} started on Slurm job {job}")),
            "{id}: its job in the log: {text}"
        );
        assert!(
            text.contains(&format!("{id} Slurm job {job} on ")),
            "{id}: its node in the log: {text}"
        );
    }
    assert_eq!(
        &slurm, local,
        "the same metrics, value for value, as the local backend"
    );
    let reg = support::registry_read_only(&runs);
    for id in slurm.keys() {
        assert_eq!(job_ids(&runs, id).len(), 1, "{id}: one job");
        assert_eq!(reg.run(id).unwrap().unwrap().attempts, 1, "{id}: trained once");
    }
    // The registry was only ever written by the coordinator: workers wrote their folders.
    let (ok, text) = output(cluster.pixelx(&runs).args(["run"]).arg(&file));
    assert!(ok && text.contains("0 completed, 4 already done"), "{text}");
}

/// Returns the undisturbed results of the longer sweep it uses.
fn preemption_and_requeue_resume_exactly(cluster: &Cluster, base: &Path) -> Results {
    // Undisturbed reference with the same names (run ids hash the experiment name).
    let reference = base.join("requeue-reference");
    let file = experiment(base, "requeue", 4096, "slurm", "");
    let (ok, text) = output(cluster.pixelx(&reference).args(["-q", "run"]).arg(&file));
    assert!(ok, "{text}");
    let undisturbed = results(&reference);

    for (how, action) in [
        (
            "USR2 (the time-limit warning)",
            &["scancel", "--signal=USR2", "--batch"][..],
        ),
        ("scontrol requeue", &["scontrol", "requeue"][..]),
    ] {
        let runs = base.join(format!("requeue-{}", action[0]));
        let coordinator = start_sweep(cluster, &runs, &file);
        let (id, job) = first_training_run(&runs, true);
        let (ok, text) = output(cluster.tool(action[0]).args(&action[1..]).arg(&job));
        assert!(ok, "{how}: {text}");
        let (ok, text) = finished(coordinator);
        assert!(ok, "{how}: {text}");
        assert_eq!(
            results(&runs),
            undisturbed,
            "{how}: the same metrics as undisturbed, every step once"
        );
        assert_eq!(
            job_ids(&runs, &id),
            std::slice::from_ref(&job),
            "{how}: requeued as the same job"
        );
        let journal = std::fs::read_to_string(runs.join(&id).join("journal.jsonl")).unwrap();
        assert!(
            journal.contains("\"event\":\"checkpoint\"")
                && journal.matches("\"event\":\"started\"").count() == 2,
            "{how}: checkpointed mid-epoch and resumed once"
        );
    }
    undisturbed
}

/// (On the longer sweep, so that jobs are still running when the coordinator is killed.)
fn a_killed_coordinator_reattaches_without_submitting_twice(
    cluster: &Cluster,
    base: &Path,
    undisturbed: &Results,
) {
    let runs = base.join("killed");
    let file = experiment(base, "requeue", 4096, "slurm", "");
    let mut coordinator = cluster
        .pixelx(&runs)
        .args(["-q", "run"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    first_training_run(&runs, false);
    support::signal(coordinator.id(), SIGKILL);
    let _ = coordinator.wait();
    assert!(
        !cluster.pixelx_jobs().is_empty(),
        "the jobs outlive their coordinator"
    );
    let (ok, text) = output(cluster.pixelx(&runs).args(["run"]).arg(&file));
    assert!(ok, "{text}");
    assert!(text.contains("re-attached"), "{text}");
    assert_eq!(&results(&runs), undisturbed, "nothing lost, nothing duplicated");
    for id in undisturbed.keys() {
        assert_eq!(job_ids(&runs, id).len(), 1, "{id}: no job submitted twice");
    }
}

fn dead_workers_fail_with_slurms_reason_and_cancelled_jobs_resume(cluster: &Cluster, base: &Path) {
    // kill -9 of a worker on the node: failed with Slurm's account, then retried once.
    let runs = base.join("dies");
    let file = experiment(base, "dies", 4096, "slurm", "");
    let coordinator = start_sweep(cluster, &runs, &file);
    let (id, _) = first_training_run(&runs, true);
    let journal = std::fs::read_to_string(runs.join(&id).join("journal.jsonl")).unwrap();
    let started: serde_json::Value = serde_json::from_str(journal.lines().next().unwrap()).unwrap();
    support::signal(started["pid"].as_u64().unwrap() as u32, SIGKILL);
    let (ok, text) = finished(coordinator);
    assert!(ok, "the retry completed it: {text}");
    let reg = support::registry_read_only(&runs);
    let events: Vec<String> = reg
        .events(&id)
        .unwrap()
        .into_iter()
        .map(|(s, _, d)| format!("{s} {}", d.unwrap_or_default()))
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("failed") && e.contains("Slurm job") && e.contains("FAILED")),
        "the failure carries Slurm's reason: {events:?}"
    );
    let row = reg.run(&id).unwrap().unwrap();
    assert_eq!(
        (row.status, row.attempts),
        (RunStatus::Completed, 2),
        "{events:?}"
    );

    // scancel of a job: its run is interrupted, and running the file again finishes it.
    let runs = base.join("cancelled");
    let file = experiment(base, "cancelled", 4096, "slurm", "");
    let coordinator = start_sweep(cluster, &runs, &file);
    let (id, job) = first_training_run(&runs, true);
    let (ok, text) = output(cluster.tool("scancel").arg(&job));
    assert!(ok, "{text}");
    assert!(
        wait_for(Duration::from_secs(60), || status_of(&runs, &id)
            == Some(RunStatus::Interrupted)),
        "a cancelled job leaves its run interrupted"
    );
    let (_, text) = finished(coordinator);
    assert!(text.contains("1 interrupted"), "{text}");
    let (ok, text) = output(cluster.pixelx(&runs).args(["-q", "run"]).arg(&file));
    assert!(ok && text.contains("1 completed, 3 already done"), "{text}");
}

fn bad_settings_fail_clearly_and_submit_nothing(cluster: &Cluster, base: &Path) {
    let file = experiment(base, "bad", 512, "slurm", "");
    let empty_path = base.join("empty-path");
    std::fs::create_dir_all(&empty_path).unwrap();
    let cases: [(&[&str], Option<&Path>, &[&str]); 4] = [
        (&[], Some(&empty_path), &["`sbatch` is not on PATH"]),
        (
            &["--set", "scheduler.slurm.partition=nosuch"],
            None,
            &["`scheduler.slurm.partition`", "no partition `nosuch`", "debug"],
        ),
        (
            &["--set", "scheduler.slurm.time=1h"],
            None,
            &["`scheduler.slurm.time`", "not a Slurm time limit"],
        ),
        (
            &["--set", "scheduler.slurm.gpus_per_run=1"],
            None,
            &["`scheduler.slurm.gpus_per_run`", "no node"],
        ),
    ];
    for (args, path, expected) in cases {
        let runs = base.join("bad-runs");
        let mut cmd = cluster.pixelx(&runs);
        cmd.arg("run").arg(&file).args(args);
        if let Some(p) = path {
            cmd.env("PATH", p);
        }
        let (ok, text) = output(&mut cmd);
        assert!(!ok, "{args:?} was accepted: {text}");
        for e in expected {
            assert!(text.contains(e), "{args:?}: expected `{e}` in: {text}");
        }
        assert!(!runs.exists(), "{args:?}: nothing written");
        assert!(cluster.pixelx_jobs().is_empty(), "{args:?}: nothing submitted");
    }
}
