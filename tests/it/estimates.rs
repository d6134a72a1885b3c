//! What a sweep costs (issue 13): the `--dry-run` estimate against the real sweep's wall time,
//! the plain progress lines of a sweep whose output is not a terminal, `pixelx ls` while it
//! runs, estimates from history, and the warning for a long CPU sweep.
//! Belongs here: `--dry-run` plans and estimates, progress lines, the time a sweep will take.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{self, pixelx, run_in, tiny_experiment, wait_for};

/// Seconds in a rounded estimate as `pixelx` prints it: `42 s`, `2.5 min`, `3.5 h`, `1.2 days`.
fn parse_about(text: &str) -> Option<f64> {
    let rest = &text[text.find("about ")? + "about ".len()..];
    let mut words = rest.split_whitespace();
    let value: f64 = words.next()?.parse().ok()?;
    let unit = match words.next()? {
        "s" => 1.0,
        "min" => 60.0,
        "h" => 3600.0,
        "days" => 86400.0,
        _ => return None,
    };
    Some(value * unit)
}

/// The total line of `pixelx run`'s output.
fn total_line(stdout: &str) -> String {
    stdout
        .lines()
        .find(|l| l.contains("images·epochs"))
        .unwrap_or_else(|| panic!("no total line in:\n{stdout}"))
        .to_owned()
}

fn quickstart() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/quickstart.toml").into()
}

// The quickstart on 3,000 of its 10,000 training images and 500 of its 2,000 test images, in the
// dry run and the real run alike: the same file, architecture, slots and samples, in about 40 s
// instead of two minutes on two cores. Fixed costs (worker start, samples, checkpoints) weigh
// more in the shorter sweep, so it tests the estimate's overheads at least as hard.
const SHRINK: [&str; 4] = ["--set", "train_subset=3000", "--set", "test_subset=500"];

#[test]
fn the_dry_run_estimate_of_the_quickstart_is_within_a_factor_of_two_of_its_wall_time() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let file = quickstart();
    let started = Instant::now();
    let (ok, stdout, stderr) = run_in(
        &runs,
        &[&["run", file.as_str(), "--dry-run"], &SHRINK[..]].concat(),
    );
    let dry_seconds = started.elapsed().as_secs_f64();
    assert!(ok, "{stderr}");
    assert!(!runs.exists(), "a dry run creates nothing");
    let total = total_line(&stdout);
    assert!(
        total.contains("2 runs") && total.contains("2 CPU slots"),
        "{total}"
    );
    assert!(total.contains("calibrated: 1 architecture"), "{total}");
    let estimate = parse_about(&total).unwrap_or_else(|| panic!("no estimate in: {total}"));

    let started = Instant::now();
    let (ok, _, stderr) = run_in(&runs, &[&["-q", "run", file.as_str()], &SHRINK[..]].concat());
    let actual = started.elapsed().as_secs_f64();
    assert!(ok, "{stderr}");
    let ratio = estimate / actual;
    eprintln!(
        "quickstart (shrunk): estimate {estimate:.1} s ({total}), actual {actual:.1} s, ratio {ratio:.2}; \
         the dry run took {dry_seconds:.1} s, calibration included"
    );
    assert!(
        (0.5..=2.0).contains(&ratio),
        "estimate {estimate:.1} s against {actual:.1} s"
    );
}

#[test]
fn a_sweep_that_is_not_on_a_terminal_prints_a_line_per_run_per_epoch_with_speed_and_eta() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let file = dir.path().join("plain.toml");
    let text = tiny_experiment("plain", 2, 2000, "seed = [1, 2]", "devices = [\"cpu\", \"cpu\"]");
    std::fs::write(&file, &text).unwrap();
    let mut child = pixelx()
        .arg("--runs-dir")
        .arg(&runs)
        .arg("run")
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read stderr as it comes, so the pipe never fills.
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    // While it runs, `pixelx ls` shows the running runs' epoch and ETA.
    let mut seen = String::new();
    let shown = wait_for(Duration::from_secs(120), || {
        let (ok, out, _) = run_in(&runs, &["ls"]);
        if ok
            && out
                .lines()
                .any(|l| l.contains("running (epoch ") && l.contains(", ETA "))
        {
            seen = out;
            return true;
        }
        child.try_wait().ok().flatten().is_some()
    });
    let out = child.wait_with_output().unwrap();
    let lines = reader.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", lines.join("\n"));
    assert!(
        shown && seen.contains("ETA"),
        "ls never showed a running run's ETA"
    );

    let total = total_line(&stdout);
    assert!(
        total.starts_with("2 runs, 8.0 k images·epochs, about "),
        "{total}"
    );
    let ids: Vec<String> = lines
        .iter()
        .filter_map(|l| l.strip_suffix(" completed"))
        .map(str::to_owned)
        .collect();
    assert_eq!(ids.len(), 2, "{}", lines.join("\n"));
    for id in &ids {
        for epoch in 1..=2 {
            let tag = format!("{id} epoch {epoch}/2 ");
            let matching: Vec<&String> = lines.iter().filter(|l| l.starts_with(&tag)).collect();
            assert_eq!(matching.len(), 1, "{tag}:\n{}", lines.join("\n"));
            let line = matching[0];
            let rate = line
                .split_whitespace()
                .zip(line.split_whitespace().skip(1))
                .find(|(_, unit)| *unit == "img/s")
                .and_then(|(v, _)| v.parse::<f64>().ok());
            assert!(rate.is_some_and(|r| r > 0.0), "no images/s in: {line}");
            assert!(line.contains("run ETA ") && line.contains("sweep ETA "), "{line}");
        }
    }
    assert!(
        !lines.iter().any(|l| l.contains('\r') || l.contains('\u{1b}')),
        "no redrawing off a terminal"
    );
    // Each run's start says what it is expected to take.
    assert!(
        lines
            .iter()
            .filter(|l| l.contains("started on cpu (about "))
            .count()
            == 2,
        "{}",
        lines.join("\n")
    );

    // The same architecture in another experiment: history covers it, so nothing is timed.
    let other = dir.path().join("other.toml");
    std::fs::write(
        &other,
        text.replace("name = \"plain\"", "name = \"other\"")
            .replace("seed = [1, 2]", "seed = [3, 4, 5]"),
    )
    .unwrap();
    let (ok, stdout, stderr) = run_in(
        &runs,
        &["run", other.to_str().unwrap(), "--dry-run", "--no-calibrate"],
    );
    assert!(ok, "{stderr}");
    let total = total_line(&stdout);
    assert!(
        total.starts_with("3 runs, 12.0 k images·epochs, about ")
            && total.contains("from history: 1 architecture of 2 runs"),
        "{total}"
    );
    // And the finished experiment itself has nothing left.
    let (ok, stdout, _) = run_in(
        &runs,
        &["run", file.to_str().unwrap(), "--dry-run", "--no-calibrate"],
    );
    assert!(
        ok && total_line_or_nothing(&stdout).contains("all 2 runs are done"),
        "{stdout}"
    );
}

fn total_line_or_nothing(stdout: &str) -> String {
    stdout.lines().last().unwrap_or_default().to_owned()
}

/// A sweep of tiny runs far too long for a CPU.
fn long_experiment(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("long.toml");
    let text = tiny_experiment("long", 20_000, 2000, "seed = [1, 2]", "devices = \"cpu\"");
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn without_calibration_the_plan_says_so_and_a_long_cpu_sweep_is_warned_about_but_runs() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let (ok, stdout, stderr) = run_in(&runs, &["run", &quickstart(), "--dry-run", "--no-calibrate"]);
    assert!(ok, "{stderr}");
    let header = stdout.lines().nth(1).unwrap_or_default();
    for column in [
        "run",
        "params",
        "images/epoch",
        "epochs",
        "est. time",
        "learning_rate",
    ] {
        assert!(header.contains(column), "{header}");
    }
    assert!(
        stdout.contains("54,114  10,000"),
        "parameters and images per epoch:\n{stdout}"
    );
    assert!(
        total_line(&stdout).ends_with("time estimate skipped (--no-calibrate)"),
        "{stdout}"
    );
    assert!(!runs.exists(), "a dry run creates nothing");

    let file = long_experiment(dir.path());
    let (ok, stdout, stderr) = run_in(&runs, &["run", file.to_str().unwrap(), "--dry-run"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("warning: this sweep needs about"), "{stdout}");
    assert!(
        stdout.contains("--set epochs=3") && stdout.contains("[pruner] kind = \"asha\""),
        "{stdout}"
    );
    assert!(!runs.exists(), "a dry run creates nothing");

    // Without --dry-run it warns and then starts anyway; interrupted here once a run started.
    let mut child = pixelx()
        .arg("--runs-dir")
        .arg(&runs)
        .arg("run")
        .arg(&file)
        .args(["--set", "experiment.description=a long one"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines().map_while(Result::ok);
    let started = lines.by_ref().any(|l| l.contains("started on cpu"));
    support::signal(child.id(), 2);
    let rest: Vec<String> = lines.collect();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(started, "{}", rest.join("\n"));
    assert!(stdout.contains("warning: this sweep needs about"), "{stdout}");
    assert_eq!(out.status.code(), Some(130), "stopped by the interrupt: {stdout}");
    // The way to continue is the same command: runs folder, file and overrides, quoted.
    let hint = format!(
        "`pixelx --runs-dir {} run {} --set 'experiment.description=a long one'` continues the sweep",
        runs.display(),
        file.display()
    );
    assert!(stdout.contains(&hint), "{hint}\n{stdout}");
}

#[test]
fn an_adaptive_search_is_estimated_as_its_trials_and_a_pruner_makes_it_a_bound() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tpe.toml");
    let text = tiny_experiment("tpe", 3, 1000, "", "devices = \"cpu\"").replace(
        "[grid]\n",
        "[search]\nmethod = \"tpe\"\ntrials = 6\n[search.space]\nlearning_rate = { log_uniform = [1e-3, 1e-2] }\n\
         [pruner]\nkind = \"asha\"\n",
    );
    std::fs::write(&file, text).unwrap();
    let (ok, stdout, stderr) = run_in(
        &dir.path().join("runs"),
        &["run", file.to_str().unwrap(), "--dry-run"],
    );
    assert!(ok, "{stderr}");
    let total = total_line(&stdout);
    assert!(
        total.starts_with("6 trials of the base configuration, 18.0 k images·epochs, at most about "),
        "{total}"
    );
    assert!(stdout.contains("each trial (base configuration)"), "{stdout}");
    assert!(stdout.contains("upper bound"), "{stdout}");
}

/// The default packing (`runs_per_device = "auto"`) plans slots for the runs a re-run trains:
/// two new runs on two CPU slots, but one run left (the others finished) on one slot with every
/// core, and all of them again under `--force`.
#[test]
fn default_packing_plans_slots_for_the_runs_left_to_train() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let file = dir.path().join("pack.toml");
    let grid = "learning_rate = [2e-3, 5e-3]";
    std::fs::write(&file, tiny_experiment("pack", 1, 256, grid, "devices = \"cpu\"")).unwrap();
    let file = file.to_str().unwrap();
    let cores = pixelx::host::num_cores();
    let slots = |n: usize| {
        if n == 1 {
            format!("on 1 CPU slot ({cores} thread")
        } else {
            format!("on {n} CPU slots (")
        }
    };
    let wider = ["--set", "grid.learning_rate=[2e-3, 5e-3, 1e-3]"];
    let plan = |extra: &[&str]| {
        let (ok, stdout, stderr) = run_in(&runs, &[&["run", file, "--dry-run"], extra].concat());
        assert!(ok, "{stderr}");
        total_line(&stdout)
    };
    let before = plan(&wider);
    assert!(before.contains(&slots(3.min(cores))), "{before}");
    let (ok, _, stderr) = run_in(&runs, &["-q", "run", file]);
    assert!(ok, "{stderr}");
    let after = plan(&wider);
    assert!(after.contains(&slots(1)), "two of three runs finished: {after}");
    let forced = plan(&[&wider[..], &["--force"]].concat());
    assert!(
        forced.contains(&slots(3.min(cores))),
        "--force trains all again: {forced}"
    );
}
