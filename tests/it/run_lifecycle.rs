//! A run's life through the real binary (docs/architecture.md, "Runs and their lifecycle"): one
//! coordinator per experiment, checkpoints verified before a resume, a worker that never opens
//! the registry, stops and interrupts (exit 130), divergence, and what `train`, `sample` and
//! `run` refuse before they start (output paths, sizes, run ids). Each test here first
//! reproduced a failure found by hostile use (issue 12). Real MNIST, SQLite files and signals.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{
    self, mkfifo, output_guarded, pixelx, registry, run_in, set_flag, signal, spawn_train, tiny_cpu_train,
    tiny_experiment, trained_run, wait_for, wait_guarded, SIGINT, SIGTERM,
};
use pixelx::registry::{Registry, RunStatus};

fn count(reg: &Registry, id: &str, metric: &str) -> usize {
    reg.metric_history(id)
        .unwrap()
        .iter()
        .filter(|m| m.name == metric)
        .count()
}

fn max_step(reg: &Registry, id: &str) -> i64 {
    reg.metric_history(id)
        .unwrap()
        .iter()
        .filter(|m| m.name == "train_loss")
        .map(|m| m.step)
        .max()
        .unwrap_or(0)
}

/// Epoch metrics of a run as exact bits, for comparing two runs that must agree.
fn epoch_metrics(reg: &Registry, id: &str) -> Vec<(String, i64, u64)> {
    let kept = ["epoch_train_loss", "test_nll", "test_bpd", "test_bpd8"];
    reg.metric_history(id)
        .unwrap()
        .into_iter()
        .filter(|m| kept.contains(&m.name.as_str()))
        .map(|m| (m.name, m.step, m.value.to_bits()))
        .collect()
}

// 1. Two `pixelx run` of the same file at once.
#[test]
fn a_second_run_of_a_live_experiment_says_who_runs_it_and_takes_nothing_over() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let file = dir.path().join("twice.toml");
    let text = tiny_experiment(
        "twice",
        2,
        2048,
        "learning_rate = [2e-3, 5e-3]",
        "devices = [\"cpu\"]\nretries = 1",
    );
    std::fs::write(&file, text).unwrap();
    let mut first = pixelx()
        .arg("--runs-dir")
        .arg(&runs)
        .args(["-q", "run"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reg_path = runs.join("registry.sqlite");
    assert!(
        wait_for(Duration::from_secs(60), || {
            reg_path.exists()
                && Registry::open(&reg_path)
                    .and_then(|r| r.summaries(&Default::default()))
                    .is_ok_and(|s| s.iter().any(|r| r.status == "running"))
        }),
        "the first sweep never started a run"
    );
    let (ok, _, stderr) = run_in(&runs, &["-q", "run", file.to_str().unwrap()]);
    assert!(!ok, "the second sweep must not run: {stderr}");
    assert!(
        stderr.contains(&format!("pid {}", first.id())) && stderr.contains(&pixelx::host::hostname()),
        "the second sweep names the first one's pid {} and host: {stderr}",
        first.id()
    );
    let status = wait_guarded(&mut first, Duration::from_secs(300), "the first sweep");
    assert!(status.success());
    let reg = registry(&runs);
    let all = reg.summaries(&Default::default()).unwrap();
    assert_eq!(all.len(), 2);
    for r in all {
        let row = reg.run(&r.id).unwrap().unwrap();
        assert_eq!((row.status, row.attempts), (RunStatus::Completed, 1), "{}", r.id);
        assert_eq!(
            count(&reg, &r.id, "train_loss"),
            2 * 2048 / 32,
            "{}: steps recorded once",
            r.id
        );
    }
}

/// Flips the exponent byte of `n` f32 values in the tensor data of a safetensors file.
fn corrupt_tensor_data(path: &Path, n: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let data = 8 + header;
    let start = data + (bytes.len() - data) / 2;
    let start = start - (start - data) % 4 + 3;
    for i in 0..n {
        bytes[start + 4 * i] ^= 0x40;
    }
    std::fs::write(path, bytes).unwrap();
}

// 2. A checkpoint whose checksum sidecar is gone is still verified.
#[test]
fn a_damaged_checkpoint_without_its_sidecar_is_caught_and_an_older_one_used() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    // Four epochs, interrupted after the second: two epochs of margin, so that a fast machine
    // has not finished the run when the signal lands (a finished run is not resumed).
    let reference = trained_run(&runs, &tiny_cpu_train(4, 1024));

    let (mut child, id) = spawn_train(&runs, &tiny_cpu_train(4, 1024));
    let reg_path = runs.join("registry.sqlite");
    assert!(wait_for(Duration::from_secs(120), || {
        Registry::open(&reg_path).is_ok_and(|r| count(&r, &id, "test_bpd8") >= 2)
    }));
    signal(child.id(), SIGINT);
    wait_guarded(&mut child, Duration::from_secs(60), "interrupted train");
    let ckpts = runs.join(&id).join("checkpoints");
    let mut newest_epoch = None;
    for entry in std::fs::read_dir(&ckpts).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.contains("-step-") {
            std::fs::remove_file(entry.path()).unwrap();
        } else if name.starts_with("epoch-") && name.ends_with(".safetensors") {
            newest_epoch = newest_epoch.max(Some(name));
        }
    }
    let newest = ckpts.join(newest_epoch.expect("an epoch checkpoint"));
    let mut sidecar = newest.clone().into_os_string();
    sidecar.push(".sha256");
    std::fs::remove_file(sidecar).unwrap();
    corrupt_tensor_data(&newest, 64);

    let (ok, stdout, stderr) = run_in(&runs, &["resume", &id]);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stderr.contains("checksum") || stderr.contains("SHA-256"),
        "the damage is reported: {stderr}"
    );
    let reg = registry(&runs);
    assert_eq!(
        epoch_metrics(&reg, &id),
        epoch_metrics(&reg, &reference),
        "the resumed run ends where an undisturbed one does"
    );
}

/// With no checksum anywhere (sidecar and journal gone) a checkpoint is not trusted while an older
/// verified one exists; with none verified, the newest readable one is used (with a warning).
#[test]
fn a_checkpoint_with_no_checksum_anywhere_yields_to_an_older_verified_one() {
    use pixelx::run_dir::RunDir;
    use pixelx::train::checkpoint::{newest_usable, sidecar};
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let id = trained_run(&runs, &tiny_cpu_train(2, 256));
    let run = RunDir::new(&runs, &id);
    std::fs::remove_file(run.root.join("journal.jsonl")).unwrap();
    std::fs::remove_file(sidecar(&run.epoch_checkpoint(2))).unwrap();
    let (chosen, _) = newest_usable(&run).unwrap().expect("a usable checkpoint");
    assert_eq!(chosen, run.epoch_checkpoint(1), "the older, verified checkpoint");

    std::fs::remove_file(sidecar(&run.epoch_checkpoint(1))).unwrap();
    let (chosen, _) = newest_usable(&run).unwrap().expect("a usable checkpoint");
    assert_eq!(
        chosen,
        run.epoch_checkpoint(2),
        "none verified: the newest readable one"
    );
}

/// A worker (what a Slurm job runs on a compute node) never opens the registry: with the registry
/// moved away, it finishes an interrupted run from its folder alone and creates no registry.
#[test]
fn a_worker_trains_from_its_run_folder_alone_and_never_opens_the_registry() {
    use pixelx::journal::{read_from, Event, FinalStatus};
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let reg_path = runs.join("registry.sqlite");
    let (mut child, id) = spawn_train(&runs, &tiny_cpu_train(2, 1024));
    assert!(wait_for(Duration::from_secs(120), || {
        Registry::open_read_only(&reg_path).is_ok_and(|r| count(&r, &id, "test_bpd8") >= 1)
    }));
    signal(child.id(), SIGINT);
    wait_guarded(&mut child, Duration::from_secs(60), "interrupted train");

    let away = dir.path().join("elsewhere");
    std::fs::create_dir(&away).unwrap();
    for entry in std::fs::read_dir(&runs).unwrap().flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("registry.sqlite") {
            std::fs::rename(entry.path(), away.join(name)).unwrap();
        }
    }
    let out = pixelx()
        .arg("--runs-dir")
        .arg(&runs)
        .args(["worker", &id, "--device", "cpu"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: Vec<_> = std::fs::read_dir(&runs)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("registry"))
        .collect();
    assert!(created.is_empty(), "the worker created {created:?}");

    let events = read_from(&runs.join(&id), 0).unwrap().events;
    let epochs: Vec<u32> = events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Epoch { record, .. } => Some(record.epoch),
            _ => None,
        })
        .collect();
    assert_eq!(
        epochs.last(),
        Some(&2),
        "the journal records the second epoch: {epochs:?}"
    );
    assert!(
        matches!(
            events.last(),
            Some((
                _,
                Event::Finished {
                    status: FinalStatus::Completed,
                    ..
                }
            ))
        ),
        "the journal ends with the run completed"
    );

    // Back with the registry: `ls` and `report` say what it has not ingested yet, and resume
    // ingests it without training again.
    for entry in std::fs::read_dir(&away).unwrap().flatten() {
        std::fs::rename(entry.path(), runs.join(entry.file_name())).unwrap();
    }
    for command in ["ls", "report"] {
        let (ok, stdout, stderr) = run_in(&runs, &[command]);
        assert!(ok, "{stdout}{stderr}");
        assert!(
            stderr.contains("newer results") && stderr.contains(&id),
            "{command} notes the unread journal: {stderr}"
        );
    }
    let (ok, stdout, stderr) = run_in(&runs, &["resume", &id]);
    assert!(ok, "{stdout}{stderr}");
    let reg = registry(&runs);
    assert_eq!(reg.run(&id).unwrap().unwrap().status, RunStatus::Completed);
    assert_eq!(count(&reg, &id, "test_bpd8"), 2, "each epoch recorded once");
    let (_, _, stderr) = run_in(&runs, &["ls"]);
    assert!(!stderr.contains("newer results"), "{stderr}");
}

/// A run recorded but never started (its coordinator was killed while it was queued) is resumed
/// from the beginning, and says so instead of claiming a checkpoint.
#[test]
fn resuming_a_run_that_never_started_says_it_starts_from_the_beginning() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let config = pixelx::config::RunConfig {
        epochs: 1,
        train_subset: 256,
        ..support::tiny_config()
    };
    {
        let mut reg = registry(&runs);
        let info = pixelx::config::ExperimentInfo::named("queued", "");
        let exp = reg.upsert_experiment(&info, None, Default::default()).unwrap();
        reg.add_run(exp, "0123456789ab", &config, &runs.join("0123456789ab"), None)
            .unwrap();
    }
    let (ok, stdout, stderr) = run_in(&runs, &["resume", "0123"]);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("run 0123456789ab has no checkpoint yet; it starts from the beginning"),
        "{stdout}"
    );
    let row = registry(&runs).run("0123456789ab").unwrap().unwrap();
    assert_eq!(row.status, RunStatus::Completed);
}

// 3. Writes never replace the registry, a run folder or a special file, and follow symlinks.
#[test]
fn outputs_refuse_the_registry_run_folders_and_special_files_and_follow_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let id = trained_run(&runs, &tiny_cpu_train(1, 256));
    let reg_path = runs.join("registry.sqlite");
    let reg_bytes = std::fs::read(&reg_path).unwrap();

    let (ok, _, stderr) = run_in(&runs, &["report", "--html", reg_path.to_str().unwrap()]);
    assert!(!ok, "the registry is not an output");
    assert!(stderr.contains("registry"), "{stderr}");
    assert_eq!(std::fs::read(&reg_path).unwrap(), reg_bytes, "registry untouched");

    let inside = runs.join(&id).join("report.html");
    let (ok, _, stderr) = run_in(&runs, &["report", "--html", inside.to_str().unwrap()]);
    assert!(!ok && stderr.contains("run folder"), "{stderr}");

    let ckpt_out = runs.join(&id).join("checkpoints/w.safetensors");
    let (ok, _, stderr) = run_in(&runs, &["export", &id, "--out", ckpt_out.to_str().unwrap()]);
    assert!(!ok && stderr.contains("run folder"), "{stderr}");
    assert!(!ckpt_out.exists());

    let fifo = dir.path().join("fifo.png");
    mkfifo(&fifo);
    let mut cmd = pixelx();
    cmd.arg("--runs-dir")
        .arg(&runs)
        .args(["sample", &id, "-c", "1", "-o"])
        .arg(&fifo);
    let (status, out) = output_guarded(cmd, Duration::from_secs(30), "sample into a FIFO");
    assert!(!status.success() && out.contains("not a regular file"), "{out}");

    let node = dir.path().join("null-device");
    assert!(Command::new("mknod")
        .arg(&node)
        .args(["c", "1", "3"])
        .status()
        .unwrap()
        .success());
    let (ok, _, stderr) = run_in(&runs, &["export", &id, "--out", node.to_str().unwrap()]);
    assert!(!ok && stderr.contains("not a regular file"), "{stderr}");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&node)
        .unwrap()
        .file_type()
        .is_char_device());

    let target_dir = dir.path().join("elsewhere");
    std::fs::create_dir(&target_dir).unwrap();
    let target = target_dir.join("weights.safetensors");
    std::fs::write(&target, b"old").unwrap();
    let link = dir.path().join("link.safetensors");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (ok, _, stderr) = run_in(&runs, &["export", &id, "--out", link.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(
        std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(),
        "the link stays"
    );
    assert!(pixelx::weights::load(&target).is_ok(), "written through the link");
}

// 4. An imported run is a run like any other.
#[test]
fn an_imported_run_is_listed_shown_and_resumable() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let id = trained_run(&runs, &tiny_cpu_train(1, 256));
    let file = dir.path().join("w.safetensors");
    let (ok, _, stderr) = run_in(&runs, &["export", &id, "--out", file.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = run_in(&runs, &["import", file.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let words: Vec<&str> = stdout.split_whitespace().collect();
    let imported = words[words.iter().position(|w| *w == "run").unwrap() + 1].to_owned();
    let (ok, stdout, stderr) = run_in(&runs, &["ls"]);
    assert!(ok && stdout.contains(&imported), "{stdout}{stderr}");
    let (ok, stdout, stderr) = run_in(&runs, &["show", &imported]);
    assert!(ok && stdout.contains("imported"), "{stdout}{stderr}");
    let (ok, stdout, stderr) = run_in(&runs, &["resume", &imported]);
    assert!(ok, "{stdout}{stderr}");
    let (ok, stdout, stderr) = run_in(&runs, &["eval", &imported, "--format", "json"]);
    assert!(ok && stdout.contains("bpd8"), "{stdout}{stderr}");
}

// 5. One run-id resolver for every command.
#[test]
fn every_command_takes_a_run_id_prefix_and_rejects_what_is_not_an_id() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let id = trained_run(&runs, &tiny_cpu_train(1, 256));
    let prefix = &id[..5];
    let out = dir.path().join("x.safetensors");
    let png = dir.path().join("x.png");
    for args in [
        vec!["eval", prefix],
        vec!["export", prefix, "--out", out.to_str().unwrap()],
        vec!["sample", prefix, "-c", "1", "-o", png.to_str().unwrap()],
        vec!["show", prefix],
    ] {
        let (ok, stdout, stderr) = run_in(&runs, &args);
        assert!(ok, "{args:?}: {stdout}{stderr}");
    }
    for args in [
        vec!["eval", "../../x"],
        vec!["resume", ""],
        vec!["show", "a/b"],
        vec!["sample", "..", "-o", png.to_str().unwrap()],
    ] {
        let (ok, _, stderr) = run_in(&runs, &args);
        assert!(!ok && stderr.contains("not a run id"), "{args:?}: {stderr}");
    }
}

// 6. Signals: the row is settled before the process ends, and the exit code says interrupted.
#[test]
fn interrupted_commands_exit_130_and_leave_the_run_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let reg_path = runs.join("registry.sqlite");
    // One SIGTERM (as `timeout` sends), then two SIGINTs in quick succession, at moments spread
    // over the training (a second interrupt once crashed the process while torch was busy).
    let double = || vec![SIGINT, SIGINT];
    let cases =
        std::iter::once((vec![SIGTERM], 1500)).chain([0, 100, 200, 300, 600, 1500].map(|ms| (double(), ms)));
    for (signals, after_ms) in cases {
        let (mut child, id) = spawn_train(&runs, &tiny_cpu_train(2, 8192));
        assert!(wait_for(Duration::from_secs(60), || {
            Registry::open(&reg_path).is_ok_and(|r| {
                r.run(&id)
                    .unwrap()
                    .is_some_and(|r| r.status == RunStatus::Running)
            })
        }));
        std::thread::sleep(Duration::from_millis(after_ms));
        for s in &signals {
            signal(child.id(), *s);
            std::thread::sleep(Duration::from_millis(30));
        }
        let status = wait_guarded(&mut child, Duration::from_secs(60), "interrupted train");
        assert_eq!(
            status.code(),
            Some(130),
            "{signals:?} after {after_ms} ms: {status}"
        );
        let row = registry(&runs).run(&id).unwrap().unwrap();
        assert_eq!(
            row.status,
            RunStatus::Interrupted,
            "{signals:?} after {after_ms} ms"
        );
    }
}

// 7. Huge sweeps are refused quickly, with their size.
#[test]
fn huge_sweeps_are_refused_with_their_size_before_expanding() {
    let dir = tempfile::tempdir().unwrap();
    let axis: Vec<String> = (1..=100).map(|i| i.to_string()).collect();
    let axis = axis.join(", ");
    let grid = format!(
        "[experiment]\nname = \"huge\"\n[grid]\nseed = [{axis}]\nepochs = [{axis}]\nhidden_layers = [{axis}]\n"
    );
    let random = "[experiment]\nname = \"huge2\"\n[random]\nsamples = 100000000\nseed = 0\n[random.space]\nlearning_rate = { log_uniform = [1e-5, 1e-2] }\n";
    for (text, size) in [(grid, "1000000 runs"), (random.to_owned(), "100000000 runs")] {
        let file = dir.path().join("huge.toml");
        std::fs::write(&file, text).unwrap();
        // Under a memory limit, so that a regression fails here instead of exhausting the machine.
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(r#"ulimit -v 4000000; exec "$0" run "$1" --dry-run"#)
            .arg(env!("CARGO_BIN_EXE_pixelx"))
            .arg(&file);
        let (status, out) = output_guarded(cmd, Duration::from_secs(60), "expanding a huge sweep");
        assert!(!status.success(), "{out}");
        assert!(out.contains(size) && out.contains("max_runs"), "{out}");
    }

    // A sweep at the limit (100 × 100) expands under the same memory limit; the limit is a key
    // like any other, so `--set` raises or lowers it.
    let grid = format!("[experiment]\nname = \"big\"\n[grid]\nseed = [{axis}]\nepochs = [{axis}]\n");
    let file = dir.path().join("big.toml");
    std::fs::write(&file, grid).unwrap();
    for (set, ok, expect) in [
        ("experiment.max_runs=10000", true, "10000 runs, "),
        ("experiment.max_runs=9999", false, "10000 runs"),
    ] {
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            // 10,000 lines of plan: only the end, so the pipe never fills.
            .arg(r#"set -o pipefail; ulimit -v 4000000; "$0" --runs-dir "$1" run "$2" --dry-run --no-calibrate --set "$3" 2>&1 | tail -n 5"#)
            .arg(env!("CARGO_BIN_EXE_pixelx"))
            .arg(dir.path().join("runs"))
            .arg(&file)
            .arg(set);
        let (status, out) = output_guarded(cmd, Duration::from_secs(60), "expanding a 10,000-run sweep");
        assert_eq!(status.success(), ok, "{set}: {out}");
        assert!(out.contains(expect), "{set}: {out}");
    }
    assert!(!dir.path().join("runs").exists(), "dry runs create nothing");
}

// 8. and 9. Sizes are bounded before any work starts; nothing panics.
#[test]
fn absurd_sizes_are_rejected_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    for (flag, value, key) in [
        ("--epoch-samples", "1000000000", "epoch_samples"),
        ("--batch-size", "9223372036854775807", "batch_size"),
    ] {
        let mut args = tiny_cpu_train(1, 256);
        set_flag(&mut args, flag, value);
        let mut cmd = pixelx();
        cmd.arg("--runs-dir").arg(&runs).args(&args);
        let (status, out) = output_guarded(cmd, Duration::from_secs(60), flag);
        assert!(!status.success(), "{flag} {value}: {out}");
        assert!(out.contains(&format!("invalid `{key}`")), "{flag}: {out}");
        assert!(!out.contains("panicked"), "{out}");
    }
    let id = trained_run(&runs, &tiny_cpu_train(1, 256));
    let png = dir.path().join("s.png");
    for args in [
        ["-c", "1000000000", "--height", "28"],
        ["-c", "1", "--height", "1000000"],
        ["-c", "1", "--width", "1000000"],
    ] {
        let mut cmd = pixelx();
        cmd.arg("--runs-dir")
            .arg(&runs)
            .args(["sample", &id, "-o"])
            .arg(&png)
            .args(args);
        let (status, out) = output_guarded(cmd, Duration::from_secs(60), "absurd sample");
        assert!(
            !status.success() && out.contains("must be at most"),
            "{args:?}: {out}"
        );
        assert!(!out.contains("panicked"), "{out}");
    }
}

// 8. The epoch's checkpoint is written before samples are drawn: a sampling failure loses nothing.
#[test]
fn a_failure_while_sampling_does_not_lose_the_epoch() {
    use pixelx::run_dir::RunDir;
    let runs = tempfile::tempdir().unwrap();
    let mut config = support::tiny_config();
    config.epochs = 1;
    config.train_subset = 256;
    let run = RunDir::create(runs.path(), "s", &config).unwrap();
    // A folder where the sample grid should go makes writing it fail.
    std::fs::create_dir_all(run.epoch_samples(1)).unwrap();
    let checkpoint = run.epoch_checkpoint(1);
    let mut trainer =
        pixelx::train::Trainer::new(config, run, &support::data_dir(), tch::Device::Cpu).unwrap();
    let _ = trainer.run(
        &mut pixelx::train::NoObserver,
        &std::sync::atomic::AtomicBool::new(false),
    );
    assert!(checkpoint.exists(), "the epoch's checkpoint was written");
}

fn checkpoints_of(runs: &Path, id: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(runs.join(id).join("checkpoints"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Trains until `steps` optimiser steps are recorded, then interrupts with SIGINT.
fn interrupted_after(runs: &Path, epochs: u32, images: u32, steps: i64) -> String {
    let (mut child, id) = spawn_train(runs, &tiny_cpu_train(epochs, images));
    let reg_path = runs.join("registry.sqlite");
    assert!(wait_for(Duration::from_secs(120), || {
        Registry::open(&reg_path).is_ok_and(|r| max_step(&r, &id) >= steps)
    }));
    signal(child.id(), SIGINT);
    wait_guarded(&mut child, Duration::from_secs(60), "interrupted train");
    id
}

// 10. The mid-epoch checkpoint of an interrupt is the one a resume starts from.
#[test]
fn resume_starts_from_the_mid_epoch_checkpoint_of_an_interrupt() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    // 8192 images: 256 steps an epoch; interrupt early in the second epoch, far enough from its
    // end that a fast machine has not finished it when the signal lands (step metrics reach
    // the registry in batches, so the step seen lags the step trained).
    let id = interrupted_after(&runs, 2, 8192, 256 + 10);
    let names = checkpoints_of(&runs, &id);
    let step_ckpt = names
        .iter()
        .find(|n| n.starts_with("epoch-0001-step-"))
        .unwrap_or_else(|| panic!("a mid-epoch checkpoint after epoch 1: {names:?}"))
        .clone();
    let (ok, stdout, stderr) = run_in(&runs, &["resume", &id]);
    assert!(ok, "{stdout}{stderr}");
    let log = std::fs::read_to_string(runs.join(&id).join("train.log")).unwrap();
    let resumed = log
        .lines()
        .rev()
        .find(|l| l.contains("resuming"))
        .unwrap_or_default();
    assert!(
        resumed.contains(&step_ckpt),
        "resumed from {step_ckpt}: {resumed}"
    );
    assert_eq!(count(&registry(&runs), &id, "train_loss"), 2 * 256);
}

/// `precision = "auto"` records what it chose for the device: the journal's `started` line, the
/// registry, `report --format json` and `pixelx show` say the precision this CPU resolves it to
/// (bf16 with avx512_bf16/amx_bf16, else fp32), and the resume records the same again.
#[test]
fn an_auto_run_records_the_precision_it_chose_and_keeps_it_on_resume() {
    use pixelx::journal::{read_from, Event};
    use pixelx::precision::Precision;
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let mut args = tiny_cpu_train(1, 8192);
    set_flag(&mut args, "--precision", "auto");
    let (mut child, id) = spawn_train(&runs, &args);
    let reg_path = runs.join("registry.sqlite");
    // 256 steps: interrupt early in them.
    assert!(wait_for(Duration::from_secs(120), || {
        Registry::open(&reg_path).is_ok_and(|r| max_step(&r, &id) >= 20)
    }));
    signal(child.id(), SIGINT);
    wait_guarded(&mut child, Duration::from_secs(60), "interrupted train");

    let chosen = Precision::Auto.resolve(tch::Device::Cpu);
    let row = registry(&runs).run(&id).unwrap().unwrap();
    assert_eq!(row.status, RunStatus::Interrupted);
    assert_eq!(
        (row.config.precision, row.precision),
        (Precision::Auto, Some(chosen))
    );
    let (ok, stdout, stderr) = run_in(&runs, &["show", &id]);
    assert!(ok, "{stdout}{stderr}");
    let line = format!("\nprecision  {} (auto)\n", chosen.as_str());
    assert!(stdout.contains(&line), "{line:?} in:\n{stdout}");

    let (ok, stdout, stderr) = run_in(&runs, &["resume", &id]);
    assert!(ok, "{stdout}{stderr}");
    let started: Vec<Option<Precision>> = read_from(&runs.join(&id), 0)
        .unwrap()
        .events
        .into_iter()
        .filter_map(|(_, e)| match e {
            Event::Started { precision, .. } => Some(precision),
            _ => None,
        })
        .collect();
    assert_eq!(started, [Some(chosen), Some(chosen)], "the start and the resume");
    let reg = registry(&runs);
    assert_eq!(reg.run(&id).unwrap().unwrap().status, RunStatus::Completed);
    let summary = &reg.summaries(&pixelx::registry::RunFilter::run(&id)).unwrap()[0];
    assert_eq!(summary.precision_used.as_deref(), Some(chosen.as_str()));
    assert_eq!(summary.params["precision"], "auto");
}

// 11. Run folders are found under the runs folder given, not where they were first made.
#[test]
fn resume_trains_in_the_runs_folder_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("runs");
    let id = interrupted_after(&old, 2, 4096, 20);
    let new = dir.path().join("moved");
    std::fs::rename(&old, &new).unwrap();
    let (ok, stdout, stderr) = run_in(&new, &["resume", &id]);
    assert!(ok, "{stdout}{stderr}");
    assert!(!old.exists(), "nothing written to the old place");
    assert!(new.join(&id).join("checkpoints/epoch-0002.safetensors").exists());
    assert_eq!(
        registry(&new).run(&id).unwrap().unwrap().status,
        RunStatus::Completed
    );
}

// 12. A loss far above the uniform model's is divergence; NaN weights are not imported.
#[test]
fn an_exploding_loss_is_diverged_and_nan_weights_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let mut args = tiny_cpu_train(1, 512);
    set_flag(&mut args, "--lr", "1e6");
    let mut cmd = pixelx();
    cmd.arg("--runs-dir").arg(&runs).arg("-q").args(&args);
    let (status, out) = output_guarded(cmd, Duration::from_secs(120), "lr 1e6");
    assert!(!status.success(), "{out}");
    assert!(out.contains("diverged"), "{out}");
    let reg = registry(&runs);
    let all = reg.summaries(&Default::default()).unwrap();
    assert_eq!(all[0].status, "diverged", "{out}");
    assert!(!out.contains("diverged: diverged"), "{out}");

    let id = trained_run(&runs, &tiny_cpu_train(1, 256));
    let file = dir.path().join("w.safetensors");
    let (ok, _, stderr) = run_in(&runs, &["export", &id, "--out", file.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let mut w = pixelx::weights::load(&file).unwrap();
    let t = w.tensors.get_mut("out_conv.bias").unwrap();
    *t = t.fill(f64::NAN);
    pixelx::weights::save(&file, &w.tensors, w.metadata).unwrap();
    let (ok, _, stderr) = run_in(&runs, &["import", file.to_str().unwrap()]);
    assert!(!ok && stderr.contains("NaN"), "{stderr}");
}

// 13. The original's default model in RGB is a valid configuration.
#[test]
fn the_original_default_rgb_model_is_accepted() {
    let config = pixelx::config::RunConfig {
        data_channels: 3,
        hidden_fmaps: 30,
        out_hidden_fmaps: 10,
        ..Default::default()
    };
    assert_eq!(config.validate(), Ok(()));
    let (ok, _, stderr) = run_in(
        &tempfile::tempdir().unwrap().path().join("runs"),
        &["run", &write_rgb_experiment(), "--dry-run"],
    );
    assert!(ok, "{stderr}");
}

fn write_rgb_experiment() -> String {
    let dir = std::env::temp_dir().join(format!("pixelx-rgb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path: PathBuf = dir.join("rgb.toml");
    std::fs::write(
        &path,
        "[experiment]\nname = \"rgb\"\n[defaults]\ndata_channels = 3\nhidden_fmaps = 30\nout_hidden_fmaps = 10\n",
    )
    .unwrap();
    path.display().to_string()
}
