//! The `pixelx` binary: bad input fails cleanly, and a trained run can be sampled, evaluated,
//! exported and imported.
//! Belongs here: a single-run command (`train`, `sample`, `eval`, `export`, `import`) end to end.

use std::path::Path;

use crate::support::{self, pixelx, run_in as run, TINY_MODEL};

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn bad_training_flags_fail_with_a_message_and_no_run_folder() {
    let runs = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--hidden-ksize", "4"],
            "invalid `hidden_ksize` (from --hidden-ksize): must be an odd number",
        ),
        (&["--causal-ksize", "2"], "invalid `causal_ksize`"),
        (
            &["--color-levels", "1"],
            "invalid `color_levels` (from --color-levels): must be in 2..=256",
        ),
        (&["--color-levels", "300"], "invalid `color_levels`"),
        (
            &["--data-channels", "3", "--hidden-fmaps", "31"],
            "invalid `hidden_fmaps` (from --hidden-fmaps): must be divisible by data_channels = 3",
        ),
        (
            &["--lr", "0"],
            "invalid `learning_rate` (from --learning-rate): must be positive",
        ),
        (&["--learning-rate", "-1e-3"], "invalid `learning_rate`"),
        (
            &["--batch-size", "0"],
            "invalid `batch_size` (from --batch-size): must be in 1..=",
        ),
        (
            &["--dataset", "imagenet"],
            "invalid value 'imagenet' for '--dataset <DATASET>'",
        ),
        (&["--device", "tpu:0"], "unknown device `tpu:0`"),
        (&["--device", "cuda:7"], "cuda:7 requested"),
    ];
    for (args, expected) in cases {
        let (ok, _, stderr) = run(runs.path(), &[&["train", "--epochs", "1"], *args].concat());
        assert!(!ok, "{args:?} should fail");
        assert!(
            stderr.contains(expected),
            "{args:?}: expected `{expected}` in: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    }
    assert_eq!(entries(runs.path()), 0, "no run folder for a rejected config");
}

#[test]
fn a_missing_dataset_names_the_file_and_the_fix() {
    let runs = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let out = pixelx()
        .env("PIXELX_DATA_DIR", empty.path())
        .arg("--runs-dir")
        .arg(runs.path())
        .args(["train", "--epochs", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("train-images-idx3-ubyte: file not found"),
        "{stderr}"
    );
    assert!(stderr.contains("just setup"), "{stderr}");
    assert_eq!(entries(runs.path()), 0);
}

#[test]
fn unreadable_checkpoints_are_reported_not_panicked_on() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"definitely not safetensors").unwrap();
    for cmd in ["eval", "sample"] {
        let (ok, _, stderr) = run(dir.path(), &[cmd, "--checkpoint", garbage.to_str().unwrap()]);
        assert!(
            !ok && stderr.contains("not a readable safetensors file"),
            "{cmd}: {stderr}"
        );
        let (ok, _, stderr) = run(dir.path(), &[cmd, "no-such-run"]);
        assert!(
            !ok && stderr.contains("`no-such-run` is not a run id"),
            "{cmd}: {stderr}"
        );
        let (ok, _, stderr) = run(dir.path(), &[cmd, "abcdef"]);
        assert!(!ok && stderr.contains("no registry at"), "{cmd}: {stderr}");
    }
}

#[test]
fn train_sample_eval_export_import_round_trip() {
    let runs = tempfile::tempdir().unwrap();
    let own = [
        "train",
        "--epochs",
        "1",
        "--train-subset",
        "256",
        "--test-subset",
        "128",
        "--epoch-samples",
        "4",
        "--cuda",
        "false",
        "--lr",
        "0.002",
    ];
    let train_args = [own.as_slice(), TINY_MODEL.as_slice()].concat();
    let (ok, stdout, stderr) = run(runs.path(), &train_args);
    assert!(ok, "{stderr}");
    let id = stdout.split_whitespace().nth(1).unwrap().to_owned();
    assert!(stdout.contains("bpd8"), "final metrics printed: {stdout}");

    let (ok, json, stderr) = run(runs.path(), &["eval", &id, "--format", "json"]);
    assert!(ok, "{stderr}");
    let m: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(m["images"], 128);
    let bpd = m["bpd"].as_f64().unwrap();
    assert!((m["bpd8"].as_f64().unwrap() - bpd - 7.0).abs() < 1e-9);

    let png = runs.path().join("s.png");
    let args = [
        "sample",
        &id,
        "-c",
        "3",
        "--height",
        "5",
        "--width",
        "9",
        "-o",
        png.to_str().unwrap(),
        "--label",
        "4",
    ];
    let (ok, _, stderr) = run(runs.path(), &args);
    assert!(ok, "{stderr}");
    let img = image::open(&png).unwrap();
    assert_eq!(
        (img.width(), img.height()),
        (2 * 9 + 3 * 2, 2 * 5 + 3 * 2),
        "3 samples in a 2x2 grid"
    );
    // Whole processes draw the same images whichever sampler and however many threads (the
    // cached one runs on threads of its own on the CPU, libtorch kept to one).
    let grid = |name: &str, sampler: &str, threads: &str| {
        let out = runs.path().join(name);
        let args = [
            "--threads",
            threads,
            "sample",
            &id,
            "-c",
            "3",
            "--height",
            "5",
            "--width",
            "9",
        ];
        let (ok, _, stderr) = run(
            runs.path(),
            &[
                &args[..],
                &["--sampler", sampler, "--seed", "7", "-o", out.to_str().unwrap()],
            ]
            .concat(),
        );
        assert!(ok, "{sampler} on {threads} thread(s): {stderr}");
        std::fs::read(out).unwrap()
    };
    let naive = grid("n.png", "naive", "2");
    assert_eq!(grid("c1.png", "cached", "1"), naive, "cached, 1 thread");
    assert_eq!(grid("c2.png", "cached", "2"), naive, "cached, 2 threads");
    let (ok, _, stderr) = run(
        runs.path(),
        &["sample", &id, "--hidden-fmaps", "30", "-o", png.to_str().unwrap()],
    );
    assert!(
        !ok && stderr.contains("--hidden-fmaps 30 does not match the checkpoint"),
        "{stderr}"
    );

    let exported = runs.path().join("w.safetensors");
    let (ok, _, stderr) = run(runs.path(), &["export", &id, "--out", exported.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = run(runs.path(), &["import", exported.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let words: Vec<&str> = stdout.split_whitespace().collect();
    let imported = words[words.iter().position(|w| *w == "run").unwrap() + 1].to_owned();
    let (ok, json2, stderr) = run(
        runs.path(),
        &["eval", &imported, "--format", "json", "--test-subset", "128"],
    );
    assert!(ok, "{stderr}");
    let m2: serde_json::Value = serde_json::from_str(json2.trim()).unwrap();
    assert_eq!(m2["nll"], m["nll"], "the imported weights are the same model");
    // Recorded alike, so filters (`--where data_channels=0`, `[[exclude]]`) treat them alike.
    let reg = support::registry_read_only(runs.path());
    let channels = |run: &str| {
        reg.summaries(&Default::default())
            .unwrap()
            .into_iter()
            .find(|r| r.id == run)
            .map(|r| r.params["data_channels"].clone())
    };
    assert_eq!(channels(&imported), channels(&id));
}

#[test]
fn ctrl_c_checkpoints_mid_epoch_and_resume_finishes_the_run() {
    let runs = tempfile::tempdir().unwrap();
    let child = pixelx()
        .arg("--runs-dir")
        .arg(runs.path())
        .args([
            "-q",
            "train",
            "--epochs",
            "2",
            "--train-subset",
            "12288",
            "--test-subset",
            "128",
        ])
        .args(TINY_MODEL)
        .args(["--epoch-samples", "0", "--cuda", "false"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Into the first epoch (about 10 s of a tiny model here), well before its end: a signal at
    // an epoch's end leaves only that epoch's checkpoint, not the mid-epoch one this checks.
    std::thread::sleep(std::time::Duration::from_secs(4));
    // SAFETY: signalling the child we spawned.
    unsafe { kill(child.id() as i32, 2) };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(130),
        "an interrupted command exits 130: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("interrupted; `pixelx resume"), "{stdout}");
    let id = stdout.split_whitespace().nth(1).unwrap().to_owned();
    let registry = support::registry(runs.path());
    assert_eq!(
        registry.run(&id).unwrap().unwrap().status,
        pixelx::registry::RunStatus::Interrupted
    );
    let ckpts: Vec<String> = std::fs::read_dir(runs.path().join(&id).join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        ckpts.iter().any(|n| n.contains("-step-")),
        "a mid-run checkpoint: {ckpts:?}"
    );

    let (ok, stdout, stderr) = run(runs.path(), &["-q", "resume", &id[..6]]);
    assert!(ok && stdout.contains("completed"), "{stdout} {stderr}");
    let steps = registry
        .metric_history(&id)
        .unwrap()
        .iter()
        .filter(|m| m.name == "train_loss")
        .count();
    assert_eq!(steps, 2 * 12288 / 32, "every step recorded exactly once");
}

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}
