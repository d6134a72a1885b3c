//! `pixelx train` of tiny models on real MNIST: the flags, a run trained to the end, a run
//! started in the background.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};

use super::{pixelx, TestCommand, TINY_MODEL};

/// `pixelx train` flags of a tiny run with `epochs` epochs over `images` training images
/// (device `auto`, which resolves to this machine's CPU; learning rate 0.005; fp32 pinned, so
/// that results do not depend on whether the CPU has bf16).
pub fn tiny_train(epochs: u32, images: u32) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--precision",
        "fp32",
        "--epochs",
        &epochs.to_string(),
        "--train-subset",
        &images.to_string(),
        "--test-subset",
        "128",
        "--epoch-samples",
        "0",
        "--lr",
        "0.005",
        "--lr-schedule",
        "cosine",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(TINY_MODEL.iter().map(|s| s.to_string()));
    args
}

/// [`tiny_train`] on the CPU whatever the machine has (`--cuda false`).
pub fn tiny_cpu_train(epochs: u32, images: u32) -> Vec<String> {
    let mut args = tiny_train(epochs, images);
    set_flag(&mut args, "--cuda", "false");
    args
}

/// Sets `flag` to `value` in `args`, replacing a value it already has.
pub fn set_flag(args: &mut Vec<String>, flag: &str, value: &str) {
    match args.iter().position(|a| a == flag) {
        Some(i) => args[i + 1] = value.to_owned(),
        None => args.extend([flag.to_owned(), value.to_owned()]),
    }
}

/// Trains `args` (`pixelx -q train …`) to completion in the runs folder `runs` and returns the
/// run's id; a failure shows the command, the folder and the output.
pub fn trained_run(runs: &Path, args: &[String]) -> String {
    let stdout = TestCommand::pixelx_in(runs).arg("-q").args(args).stdout();
    run_id_of(&stdout)
}

/// The id `pixelx train` prints on its first line (`run <id>  ->  <folder>`).
pub fn run_id_of(stdout: &str) -> String {
    stdout
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no run id in: {stdout}"))
        .to_owned()
}

/// Starts `pixelx -q <args>` in the runs folder `runs` in the background and returns it with its
/// run id (read from its first line).
pub fn spawn_train(runs: &Path, args: &[String]) -> (Child, String) {
    let mut child = pixelx()
        .arg("--runs-dir")
        .arg(runs)
        .arg("-q")
        .args(args)
        .stdout(Stdio::piped())
        // Nobody reads it: a pipe could fill and stall the run.
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let id = run_id_of(&line);
    (child, id)
}
