//! Integrity of what a run leaves on disk (issue 17): a checkpoint proves which run it belongs
//! to, a torn journal line never corrupts the record, an unreadable journal fails only its own
//! run, special and oversized files are refused at once. Real binaries, real MNIST, real SQLite.
//! Belongs here: checkpoints, journals and files a run leaves, and how they are verified.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::support::{
    mkfifo, output_guarded, pixelx, registry, run_in, set_flag, signal, spawn_train, tiny_experiment,
    tiny_train, trained_run, wait_for, SIGKILL,
};
use pixelx::registry::{Registry, RunFilter, RunStatus};

fn guarded(runs: &Path, args: &[&str], what: &str) -> (bool, String) {
    let mut cmd = pixelx();
    cmd.arg("--runs-dir").arg(runs).args(args);
    let (status, out) = output_guarded(cmd, Duration::from_secs(60), what);
    (status.success(), out)
}

/// (metric, step) pairs recorded more than once for a run.
fn duplicated_steps(reg: &Registry, id: &str) -> Vec<(String, i64, usize)> {
    let mut seen: HashMap<(String, i64), usize> = HashMap::new();
    for m in reg.metric_history(id).unwrap() {
        *seen.entry((m.name, m.step)).or_default() += 1;
    }
    let mut dups: Vec<_> = seen
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|((name, step), n)| (name, step, n))
        .collect();
    dups.sort();
    dups
}

// BAD 2. A checkpoint that is not the run's own is refused by every command that reads a run's
// weights, naming both runs; a file given by path is still read.
#[test]
fn a_checkpoint_of_another_run_is_refused_naming_both_runs() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let a = trained_run(&runs, &tiny_train(1, 256));
    let mut other_lr = tiny_train(1, 256);
    set_flag(&mut other_lr, "--lr", "0.002");
    let b = trained_run(&runs, &other_lr);
    let (ca, cb) = (
        runs.join(&a).join("checkpoints"),
        runs.join(&b).join("checkpoints"),
    );
    let tmp = runs.join("swap");
    std::fs::rename(&ca, &tmp).unwrap();
    std::fs::rename(&cb, &ca).unwrap();
    std::fs::rename(&tmp, &cb).unwrap();

    let out = dir.path().join("a.safetensors");
    let png = dir.path().join("a.png");
    for args in [
        vec!["eval", a.as_str()],
        vec!["export", a.as_str(), "--out", out.to_str().unwrap()],
        vec!["sample", a.as_str(), "-c", "2", "-o", png.to_str().unwrap()],
    ] {
        let (ok, stdout, stderr) = run_in(&runs, &args);
        assert!(!ok, "{args:?} used another run's checkpoint: {stdout}");
        assert!(
            stderr.contains(&a) && stderr.contains(&b),
            "{args:?} names both runs: {stderr}"
        );
    }
    assert!(
        !out.exists() && !png.exists(),
        "nothing was written from B's weights"
    );

    // A resume must not continue A from B's weights either.
    registry(&runs)
        .set_status(&a, RunStatus::Interrupted, Some("stands in for a stopped run"))
        .unwrap();
    let (ok, stdout, stderr) = run_in(&runs, &["-q", "resume", &a]);
    assert!(!ok, "resume continued from another run's checkpoint: {stdout}");
    assert!(
        stderr.contains(&a) && stderr.contains(&b),
        "resume names both runs: {stderr}"
    );

    // The same file given by path is read as what it is.
    let path = ca.join("best.safetensors");
    let (ok, stdout, stderr) = run_in(
        &runs,
        &["eval", "--checkpoint", path.to_str().unwrap(), "--format", "json"],
    );
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("\"bpd\""), "{stdout}");
}

// BAD 2, the registry's side: a checkpoint that carries the run's own id but is not the file
// the run recorded (here epoch 1's bytes under epoch 2's name, with its sidecar, so that the
// file checks out by itself) is refused by its SHA-256, naming the run that recorded it.
#[test]
fn a_checkpoint_the_registry_recorded_other_bytes_for_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let a = trained_run(&runs, &tiny_train(2, 256));
    let ckpts = runs.join(&a).join("checkpoints");
    std::fs::remove_file(ckpts.join("best.safetensors")).unwrap();
    for ext in ["safetensors", "safetensors.sha256"] {
        let from = ckpts.join(format!("epoch-0001.{ext}"));
        if from.exists() {
            std::fs::copy(&from, ckpts.join(format!("epoch-0002.{ext}"))).unwrap();
        }
    }
    let (ok, stdout, stderr) = run_in(&runs, &["eval", a.as_str()]);
    assert!(
        !ok,
        "eval used bytes the run did not record for that file: {stdout}"
    );
    assert!(stderr.contains("SHA-256") && stderr.contains(&a), "{stderr}");

    registry(&runs)
        .set_status(&a, RunStatus::Interrupted, Some("stands in for a stopped run"))
        .unwrap();
    let (ok, stdout, stderr) = run_in(&runs, &["-q", "resume", &a]);
    assert!(
        !ok,
        "resume continued from bytes the run did not record: {stdout}"
    );
    assert!(stderr.contains("SHA-256") && stderr.contains(&a), "{stderr}");
}

/// Epochs of the run the torn-tail test kills.
const EPOCHS: u32 = 6;

/// Kills a `pixelx train` with SIGKILL once its journal holds `lines` lines, leaves half a line
/// at the journal's end (a write torn by the kill), resumes it and returns the run's id and the
/// torn bytes.
fn killed_with_torn_tail(runs: &Path, lines: usize) -> (String, Vec<u8>) {
    // 2048 images: 64 steps an epoch, a few journal lines each; six epochs, so that the kill
    // after at most 6 lines lands well before the end even on a loaded machine (a run that had
    // finished would not be resumed, and would prove nothing).
    let (mut child, id) = spawn_train(runs, &tiny_train(EPOCHS, 2048));
    let journal = runs.join(&id).join("journal.jsonl");
    let reached = wait_for(Duration::from_secs(120), || {
        std::fs::read_to_string(&journal).is_ok_and(|t| t.lines().count() >= lines)
    });
    signal(child.id(), SIGKILL);
    child.wait().unwrap();
    assert!(reached, "the journal never reached {lines} lines");
    let before = std::fs::read_to_string(&journal).unwrap_or_default();
    assert!(
        !before.contains("\"finished\""),
        "the run finished before the kill after {lines} lines: lengthen it"
    );
    let torn = b"{\"at\":\"2026-12-03T07:00:00.000Z\",\"event\":\"steps\",\"epoch\":2,\"st".to_vec();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap()
        .write_all(&torn)
        .unwrap();
    (id, torn)
}

// BAD 3 and the kill -9 suite: after a kill at any moment and a torn last line, a resume cuts the
// torn tail (kept aside), records its own start, and no (run, metric, step) is recorded twice.
#[test]
fn a_torn_journal_tail_is_cut_before_a_resume_and_no_step_is_recorded_twice() {
    for lines in [2, 4, 6] {
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        let (id, torn) = killed_with_torn_tail(&runs, lines);
        let (ok, stdout, stderr) = run_in(&runs, &["-q", "resume", &id]);
        assert!(ok, "kill after {lines} lines: {stdout}{stderr}");

        let folder = runs.join(&id);
        let journal = std::fs::read_to_string(folder.join("journal.jsonl")).unwrap();
        for line in journal.lines() {
            assert!(
                serde_json::from_str::<serde_json::Value>(line).is_ok(),
                "kill after {lines} lines: every journal line is whole: {line}"
            );
        }
        let kept: Vec<PathBuf> = std::fs::read_dir(&folder)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().contains("torn"))
            .collect();
        assert_eq!(kept.len(), 1, "the torn tail is kept aside: {kept:?}");
        assert_eq!(std::fs::read(&kept[0]).unwrap(), torn);

        let reg = registry(&runs);
        assert_eq!(
            duplicated_steps(&reg, &id),
            vec![],
            "kill after {lines} lines: no step is recorded twice"
        );
        let losses = reg
            .metric_history(&id)
            .unwrap()
            .iter()
            .filter(|m| m.name == "train_loss")
            .count();
        assert_eq!(
            losses,
            EPOCHS as usize * 64,
            "kill after {lines} lines: every step once"
        );
        let starts = reg
            .events(&id)
            .unwrap()
            .iter()
            .filter(|(s, ..)| s == "running")
            .count();
        assert_eq!(
            starts, 2,
            "kill after {lines} lines: both attempts are in the history"
        );
        let row = reg.run(&id).unwrap().unwrap();
        assert_eq!(row.status, RunStatus::Completed);
        assert_eq!(
            row.device.as_deref(),
            Some("cpu"),
            "the resolved device is recorded"
        );
    }
}

/// Two tiny runs on one CPU slot, long enough to be caught mid-run.
fn two_run_experiment(name: &str) -> String {
    tiny_experiment(
        name,
        2,
        1024,
        "learning_rate = [2e-3, 5e-3]",
        "devices = [\"cpu\"]\nruns_per_device = 1",
    )
}

fn spawn_sweep(runs: &Path, file: &Path) -> Child {
    pixelx()
        .arg("--runs-dir")
        .arg(runs)
        .arg("-q")
        .arg("run")
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The run whose journal appears first under `runs`, once it has a line.
fn first_journal(runs: &Path) -> PathBuf {
    let mut found = None;
    assert!(wait_for(Duration::from_secs(120), || {
        found = std::fs::read_dir(runs).ok().and_then(|d| {
            d.flatten()
                .map(|e| e.path().join("journal.jsonl"))
                .find(|j| std::fs::metadata(j).is_ok_and(|m| m.is_file() && m.len() > 0))
        });
        found.is_some()
    }));
    found.unwrap()
}

fn finish(mut child: Child, what: &str) -> (bool, String) {
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(600) {
            let _ = child.kill();
            panic!("{what}: still running after 600 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

// BAD 4. A journal replaced by a folder fails its own run, with the cause; the sweep goes on, and
// later runs of the file (plain and --force) work.
#[test]
fn an_unreadable_journal_fails_its_run_and_the_sweep_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let file = dir.path().join("j.toml");
    std::fs::write(&file, two_run_experiment("journal_dir")).unwrap();
    let child = spawn_sweep(&runs, &file);
    let journal = first_journal(&runs);
    let broken = journal
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    std::fs::remove_file(&journal).unwrap();
    std::fs::create_dir(&journal).unwrap();
    let (_, out) = finish(child, "the sweep");
    assert!(!out.contains("panicked"), "{out}");

    let reg = registry(&runs);
    let rows = reg.summaries(&RunFilter::default()).unwrap();
    assert_eq!(rows.len(), 2, "{out}");
    for r in &rows {
        let row = reg.run(&r.id).unwrap().unwrap();
        if r.id == broken {
            assert_eq!(row.status, RunStatus::Failed, "{out}");
            let error = row.error.unwrap_or_default();
            assert!(
                error.contains("journal.jsonl") && error.contains("it is a folder"),
                "the cause is named: {error}"
            );
        } else {
            assert_eq!(row.status, RunStatus::Completed, "the other run went on: {out}");
        }
    }
    drop(reg);

    // A later run of the file does not stop in preparation; --force starts the run afresh.
    let (_, out) = finish(spawn_sweep(&runs, &file), "the re-run");
    assert!(!out.contains("Is a directory (os error"), "{out}");
    let (ok, out) = finish(
        {
            let mut cmd = pixelx();
            cmd.arg("--runs-dir")
                .arg(&runs)
                .args(["-q", "run", "--force"])
                .arg(&file)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            cmd.spawn().unwrap()
        },
        "the forced re-run",
    );
    assert!(ok, "{out}");
    let reg = registry(&runs);
    assert_eq!(reg.run(&broken).unwrap().unwrap().status, RunStatus::Completed);
    assert_eq!(duplicated_steps(&reg, &broken), vec![]);
}

// BAD 5 and WEAK. Devices, FIFOs and huge files are refused at once with the reason.
#[test]
fn special_and_oversized_files_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let fifo = dir.path().join("exp.toml");
    mkfifo(&fifo);
    let huge = dir.path().join("huge.toml");
    {
        let f = std::fs::File::create(&huge).unwrap();
        f.set_len(17 << 20).unwrap();
    }
    let fifo_s = fifo.to_str().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["run", "/dev/zero", "--dry-run"], "not a regular file"),
        (&["run", fifo_s, "--dry-run"], "not a regular file"),
        (&["run", huge.to_str().unwrap(), "--dry-run"], "MiB"),
        (&["import", "/dev/zero"], "not a regular file"),
        (&["import", fifo_s], "not a regular file"),
        (&["eval", "--checkpoint", fifo_s], "not a regular file"),
    ];
    for (args, reason) in cases {
        let (ok, out) = guarded(&runs, args, &format!("{args:?}"));
        assert!(!ok, "{args:?}: {out}");
        assert!(out.contains(reason), "{args:?} says why ({reason}): {out}");
    }
}

// BAD 5. A checkpoint whose checksum sidecar is a FIFO does not block the command reading it.
#[test]
fn a_checksum_sidecar_that_is_a_fifo_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let id = trained_run(&runs, &tiny_train(1, 256));
    let best = runs.join(&id).join("checkpoints/best.safetensors");
    let sidecar = runs.join(&id).join("checkpoints/best.safetensors.sha256");
    std::fs::remove_file(&sidecar).unwrap();
    mkfifo(&sidecar);
    let (ok, out) = guarded(&runs, &["eval", "--checkpoint", best.to_str().unwrap()], "eval");
    assert!(!ok, "{out}");
    assert!(out.contains("not a regular file"), "{out}");
}

/// Writes an MNIST-style data folder of `n` square images of side `side`.
fn write_idx_dataset(dir: &Path, side: u32, n: u32) {
    let mnist = dir.join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    for split in ["train", "t10k"] {
        let mut images = 0x0000_0803u32.to_be_bytes().to_vec();
        for d in [n, side, side] {
            images.extend(d.to_be_bytes());
        }
        images.extend(std::iter::repeat_n(7u8, (n * side * side) as usize));
        std::fs::write(mnist.join(format!("{split}-images-idx3-ubyte")), images).unwrap();
        let mut labels = 0x0000_0801u32.to_be_bytes().to_vec();
        labels.extend(n.to_be_bytes());
        labels.extend((0..n).map(|i| (i % 10) as u8));
        std::fs::write(mnist.join(format!("{split}-labels-idx1-ubyte")), labels).unwrap();
    }
}

// WEAK. IDX files of another image size are not MNIST.
#[test]
fn idx_files_of_another_image_size_are_refused_as_mnist() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_idx_dataset(&data, 20, 64);
    let runs = dir.path().join("runs");
    let args = tiny_train(1, 64);
    let mut cmd = pixelx();
    cmd.env("PIXELX_DATA_DIR", &data)
        .arg("--runs-dir")
        .arg(&runs)
        .arg("-q")
        .args(&args);
    let (status, out) = output_guarded(cmd, Duration::from_secs(120), "train");
    let ok = status.success();
    assert!(!ok, "20x20 images trained as mnist: {out}");
    assert!(out.contains("20x20") && out.contains("28x28"), "{out}");
}

// WEAK. A runs folder that is a symlink loop is called one.
#[test]
fn a_runs_folder_that_is_a_symlink_loop_is_named_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    std::os::unix::fs::symlink(&runs, &runs).unwrap();
    let file = dir.path().join("e.toml");
    std::fs::write(&file, two_run_experiment("loop")).unwrap();
    let train = tiny_train(1, 64);
    let train: Vec<&str> = train.iter().map(String::as_str).collect();
    for args in [vec!["run", file.to_str().unwrap()], train] {
        let (ok, out) = guarded(&runs, &args, &format!("{args:?}"));
        assert!(!ok, "{out}");
        assert!(out.contains("symbolic link loop"), "{args:?}: {out}");
        assert!(!out.contains("File exists"), "{args:?}: {out}");
    }
}

// WEAK. A run folder deleted while its run trains fails that run with the cause, not with a log
// path inside the deleted folder.
#[test]
fn a_run_folder_deleted_mid_sweep_names_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let file = dir.path().join("d.toml");
    std::fs::write(&file, two_run_experiment("deleted")).unwrap();
    let child = spawn_sweep(&runs, &file);
    let journal = first_journal(&runs);
    let folder = journal.parent().unwrap().to_owned();
    let id = folder.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::remove_dir_all(&folder).unwrap();
    let (_, out) = finish(child, "the sweep");
    let row = registry(&runs).run(&id).unwrap().unwrap();
    assert_eq!(row.status, RunStatus::Failed, "{out}");
    let error = row.error.unwrap_or_default();
    assert!(error.contains("deleted"), "the cause is named: {error}");
}

// BAD 3. The migration that makes a (run, metric, step) unique first removes the copies a
// registry already holds, keeping the value recorded last. Its SQL is applied here to a registry
// in the previous state (applied alone: migrations added after it need not be repeatable).
#[test]
fn the_metrics_migration_removes_duplicated_steps_and_forbids_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let id = trained_run(&runs, &tiny_train(1, 64));
    let migration = pixelx::registry::schema::MIGRATIONS
        .iter()
        .find(|m| m.contains("CREATE UNIQUE INDEX metrics_by_run"))
        .expect("the migration that makes metrics unique");
    let conn = rusqlite::Connection::open(runs.join("registry.sqlite")).unwrap();
    // The registry as the previous schema left it: a plain index and a step recorded twice.
    conn.execute_batch(&format!(
        "DROP INDEX metrics_by_run;
         CREATE INDEX metrics_by_run ON metrics(run_id, name, step);
         INSERT INTO metrics (run_id, name, step, value) VALUES ('{id}', 'train_loss', 1, 123.0);"
    ))
    .unwrap();
    let rows = |conn: &rusqlite::Connection| -> Vec<f64> {
        let mut stmt = conn
            .prepare("SELECT value FROM metrics WHERE run_id = ?1 AND name = 'train_loss' AND step = 1")
            .unwrap();
        stmt.query_map([&id], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(rows(&conn).len(), 2);
    conn.execute_batch(migration).unwrap();
    assert_eq!(rows(&conn), vec![123.0], "one row, the value recorded last");
    let again = conn.execute(
        "INSERT INTO metrics (run_id, name, step, value) VALUES (?1, 'train_loss', 1, 1.0)",
        [&id],
    );
    assert!(again.is_err(), "a second row for one step is refused");
    drop(conn);
    assert_eq!(duplicated_steps(&registry(&runs), &id), vec![]);
}
