//! Sampling measured as a user sees it: whole `pixelx sample` processes, start to PNG written,
//! on a checkpoint of the model (C=1 F=30 O=10, 6 blocks, k=7, L=2) trained for a few
//! steps here.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn pixelx(dir: &Path) -> Command {
    let data = std::env::var("PIXELX_DATA_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/data").into());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pixelx"));
    cmd.arg("--runs-dir")
        .arg(dir.join("runs"))
        .args(["--data-dir", &data]);
    cmd
}

/// Wall seconds of one successful run of `cmd`.
fn timed(mut cmd: Command) -> f64 {
    let start = Instant::now();
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    start.elapsed().as_secs_f64()
}

/// Median wall seconds of `rounds` runs of what `make` builds.
fn median_of(rounds: usize, mut make: impl FnMut() -> Command) -> f64 {
    let mut times: Vec<f64> = (0..rounds).map(|_| timed(make())).collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Trains the MNIST model for one short epoch and returns its checkpoint.
fn checkpoint(dir: &Path) -> PathBuf {
    let mut cmd = pixelx(dir);
    cmd.args([
        "-q",
        "train",
        "--dataset",
        "mnist",
        "--epochs",
        "1",
        "--train-subset",
        "64",
    ])
    .args([
        "--test-subset",
        "32",
        "--epoch-samples",
        "0",
        "--hidden-fmaps",
        "30",
    ])
    .args([
        "--out-hidden-fmaps",
        "10",
        "--hidden-layers",
        "6",
        "--causal-ksize",
        "7",
    ])
    .args([
        "--hidden-ksize",
        "7",
        "--color-levels",
        "2",
        "--data-channels",
        "1",
    ]);
    timed(cmd);
    let runs = std::fs::read_dir(dir.join("runs")).unwrap();
    runs.filter_map(Result::ok)
        .map(|e| e.path().join("checkpoints/best.safetensors"))
        .find(|p| p.exists())
        .expect("the training run wrote a checkpoint")
}

fn sample_cmd(dir: &Path, ckpt: &Path, count: u32, sampler: &str, out: &str) -> Command {
    let mut cmd = pixelx(dir);
    cmd.arg("sample")
        .arg("--checkpoint")
        .arg(ckpt)
        .args([
            "--count",
            &count.to_string(),
            "--sampler",
            sampler,
            "--seed",
            "3",
            "-o",
        ])
        .arg(dir.join(out));
    cmd
}

/// Whole processes; `naive_pass_64` is the in-process time of one full forward pass over 64
/// images, from which a whole naive 64-image process is estimated (784 passes plus start-up).
pub fn whole_process(naive_pass_64: f64) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let ckpt = checkpoint(dir);
    let start_up = median_of(3, || {
        let mut cmd = pixelx(dir);
        cmd.arg("--version");
        cmd
    });
    let t25 = median_of(3, || sample_cmd(dir, &ckpt, 25, "cached", "c25.png"));
    let t64 = median_of(3, || sample_cmd(dir, &ckpt, 64, "cached", "c64.png"));
    // Same images: a few digits through both samplers, whole processes, compared byte for byte.
    let naive3 = timed(sample_cmd(dir, &ckpt, 3, "naive", "n3.png"));
    timed(sample_cmd(dir, &ckpt, 3, "cached", "c3.png"));
    let same = std::fs::read(dir.join("n3.png")).unwrap() == std::fs::read(dir.join("c3.png")).unwrap();
    let naive64 = start_up + 784.0 * naive_pass_64;
    println!("  whole process, `pixelx sample CKPT --count N` (median of 3), start-up `pixelx --version` {start_up:.2} s");
    println!("  cached, 25 digits  {t25:8.2} s  (target < 1 s)");
    println!("  cached, 64 digits  {t64:8.2} s");
    println!("  naive, 64 digits   {naive64:8.1} s  (estimate: start-up + 784 passes; 3 digits measured: {naive3:.1} s)");
    println!(
        "  speed-up, 64       {:8.0}x  (target >= 300x, whole process against whole process)",
        naive64 / t64
    );
    println!(
        "  same PNG bytes (3 digits, naive vs cached): {}",
        if same { "yes" } else { "NO" }
    );
}
