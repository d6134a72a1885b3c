//! Clear errors (issue 12): each case is a command a user can get wrong, the words its error must
//! contain, and nothing it may contain (Rust debug text, doubled prefixes, a panic).
//! Belongs here: a message a user reads when a command fails; add a case to a table when one fits.

use std::path::Path;

use crate::support::{self, pixelx};

const GOOD: &str = r#"
[experiment]
name = "e"
dataset = "mnist"
[defaults]
epochs = 1
[grid]
learning_rate = [1e-3, 2e-3]
"#;

/// An experiment file with a search over the learning rate; `concat!` the `[search]` table and
/// any `[pruner]` after it.
macro_rules! study {
    ($search:literal, $space:literal, $pruner:literal) => {
        concat!(
            "[experiment]\nname = \"s\"\ndataset = \"mnist\"\n[defaults]\nepochs = 2\n[search]\n",
            $search,
            "\n[search.space]\n",
            $space,
            "\n",
            $pruner
        )
    };
}

/// A random search over the learning rate with the `[pruner]` table given.
macro_rules! pruned {
    ($pruner:literal) => {
        study!(
            "method = \"random\"\ntrials = 4",
            "learning_rate = { log_uniform = [1e-4, 1e-2] }",
            $pruner
        )
    };
}

struct Case {
    name: &'static str,
    /// TOML of the experiment file the command gets as `FILE` (written to `exp.toml`).
    file: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    expect: &'static [&'static str],
}

const CASES: &[Case] = &[
    // Searches and pruners: each refused by a real `run` (not a dry run) before anything is written.
    Case {
        name: "an unknown search method",
        file: study!("method = \"bayes\"\ntrials = 4", "learning_rate = { log_uniform = [1e-4, 1e-2] }", ""),
        args: &["run", "FILE"],
        env: &[],
        expect: &["search.method", "bayes", "tpe"],
    },
    Case {
        name: "an inverted range",
        file: study!("method = \"tpe\"\ntrials = 4", "learning_rate = { log_uniform = [1e-2, 1e-4] }", ""),
        args: &["run", "FILE"],
        env: &[],
        expect: &["search.space.learning_rate", "inverted range"],
    },
    Case {
        name: "an empty space",
        file: study!("method = \"tpe\"\ntrials = 4", "", ""),
        args: &["run", "FILE"],
        env: &[],
        expect: &["search.space", "empty"],
    },
    Case {
        name: "no trials",
        file: study!("method = \"tpe\"\ntrials = 0", "learning_rate = { log_uniform = [1e-4, 1e-2] }", ""),
        args: &["run", "FILE"],
        env: &[],
        expect: &["search.trials", "at least 1"],
    },
    Case {
        name: "an int axis wider than an i64 span",
        file: study!(
            "method = \"random\"\ntrials = 4",
            "seed = { int = [-9223372036854775808, 9223372036854775807], step = 3 }",
            ""
        ),
        args: &["run", "FILE", "--dry-run", "--no-calibrate"],
        env: &[],
        expect: &["search.space.seed", "within ±9007199254740992"],
    },
    Case {
        name: "importing an empty file",
        file: "",
        args: &["import", "FILE"],
        env: &[],
        expect: &["exp.toml is not a readable safetensors file: the file is empty"],
    },
    Case {
        name: "importing a file that is not safetensors",
        file: "[experiment]\nname = \"not weights\"\n",
        args: &["import", "FILE"],
        env: &[],
        expect: &["not a readable safetensors file", "implausibly large"],
    },
    Case {
        name: "an unknown pruner",
        file: pruned!("[pruner]\nkind = \"hyperband\"\n"),
        args: &["run", "FILE"],
        env: &[],
        expect: &["pruner.kind", "hyperband", "asha"],
    },
    Case {
        name: "a grace period as long as the runs",
        file: pruned!("[pruner]\nkind = \"asha\"\ngrace_epochs = 2\n"),
        args: &["run", "FILE"],
        env: &[],
        expect: &["pruner.grace_epochs", "less than the runs' epochs"],
    },
    Case {
        name: "a pruner metric that is not recorded",
        file: pruned!("[pruner]\nkind = \"median\"\nmetric = \"accuracy\"\n"),
        args: &["run", "FILE"],
        env: &[],
        expect: &["pruner.metric", "accuracy", "test_bpd8"],
    },
    Case {
        name: "wrong type in the file names the key and the file",
        file: "[experiment]\nname = \"e\"\n[defaults]\nlearning_rate = \"fast\"\n",
        args: &["run", "FILE", "--dry-run"],
        env: &[],
        expect: &["defaults.learning_rate", "exp.toml", "expected a number"],
    },
    Case {
        name: "wrong type from the environment names the variable",
        file: GOOD,
        args: &["run", "FILE", "--dry-run"],
        env: &[("PIXELX_LEARNING_RATE", "abc")],
        expect: &["PIXELX_LEARNING_RATE", "expected a number"],
    },
    Case {
        name: "wrong type from --set names the override",
        file: GOOD,
        args: &["run", "FILE", "--dry-run", "--set", "epochs=many"],
        env: &[],
        expect: &["--set epochs", "expected an integer"],
    },
    Case {
        name: "invalid value names its source",
        file: GOOD,
        args: &["run", "FILE", "--dry-run", "--set", "hidden_ksize=4"],
        env: &[],
        expect: &["invalid `hidden_ksize`", "--set hidden_ksize"],
    },
    Case {
        name: "unknown --set key gets a suggestion",
        file: GOOD,
        args: &["run", "FILE", "--dry-run", "--set", "learning_rat=3"],
        env: &[],
        expect: &["unknown key `learning_rat`", "did you mean `learning_rate`"],
    },
    Case {
        name: "unknown dotted --set key gets a suggestion",
        file: GOOD,
        args: &["run", "FILE", "--dry-run", "--set", "scheduler.runs_per_devic=2"],
        env: &[],
        expect: &["scheduler.runs_per_devic", "did you mean `runs_per_device`"],
    },
    Case {
        name: "dry run checks the devices",
        file: GOOD,
        args: &["run", "FILE", "--dry-run", "--set", "scheduler.devices=[\"cuda:7\"]"],
        env: &[],
        expect: &["cuda:7", "CUDA device"],
    },
    Case {
        name: "exclusions of the wrong type are errors",
        file: "[experiment]\nname = \"e\"\n[grid]\nlearning_rate = [1e-3]\n[[exclude]]\nlearning_rate = \"x\"\n",
        args: &["run", "FILE", "--dry-run"],
        env: &[],
        expect: &["exclude[0].learning_rate", "expected a number"],
    },
    Case {
        name: "random ranges are described, not debug-printed",
        file: "[experiment]\nname = \"e\"\n[random]\nsamples = 2\n[random.space]\nlearning_rate = { log_uniform = [1e-2, 1e-4] }\n",
        args: &["run", "FILE", "--dry-run"],
        env: &[],
        expect: &["random.space.learning_rate", "inverted range"],
    },
    Case {
        name: "control characters in names are refused",
        // A TOML escape: raw control characters are already TOML syntax errors.
        file: "[experiment]\nname = \"a\\u001b[31mb\"\n",
        args: &["run", "FILE", "--dry-run"],
        env: &[],
        expect: &["experiment.name", "control character"],
    },
    Case {
        name: "train rejects a bad PIXELX_ value instead of ignoring it",
        file: GOOD,
        args: &["train", "--epochs", "1", "--cuda", "false"],
        env: &[("PIXELX_HIDDEN_KSIZE", "4")],
        expect: &["invalid `hidden_ksize`", "PIXELX_HIDDEN_KSIZE"],
    },
    Case {
        name: "train names a PIXELX_ variable of the wrong type",
        file: GOOD,
        args: &["train", "--epochs", "1"],
        env: &[("PIXELX_EPOCHS", "abc")],
        expect: &["`epochs` (from PIXELX_EPOCHS): expected an integer"],
    },
    Case {
        name: "a learning rate that would overflow is refused",
        file: GOOD,
        args: &["train", "--epochs", "1", "--lr", "1e308", "--lr-schedule", "cyclic"],
        env: &[],
        expect: &["invalid `learning_rate`", "at most"],
    },
    Case {
        name: "an impossible batch is refused before training",
        file: GOOD,
        args: &["train", "--epochs", "1", "--batch-size", "60000", "--hidden-fmaps", "2400", "--cuda", "false"],
        env: &[],
        expect: &["memory", "batch_size"],
    },
    Case {
        name: "a negative thread count from the environment is refused",
        file: GOOD,
        args: &["run", "FILE", "--dry-run"],
        env: &[("PIXELX_THREADS", "-1")],
        expect: &["--threads", "-1 is not in 0..=4096"],
    },
    Case {
        name: "--limit 0 is refused",
        file: GOOD,
        args: &["report", "--limit", "0"],
        env: &[],
        expect: &["--limit", "at least 1"],
    },
    Case {
        name: "--best 0 is refused",
        file: GOOD,
        args: &["report", "--best", "0"],
        env: &[],
        expect: &["--best", "at least 1"],
    },
    // Issue 17: names, --set parsing and the data folder.
    Case {
        name: "the name `adhoc` is reserved for `pixelx train` runs",
        file: "[experiment]\nname = \"adhoc\"\n[grid]\nlearning_rate = [1e-3]\n",
        args: &["run", "FILE", "--dry-run", "--no-calibrate"],
        env: &[],
        expect: &["experiment.name", "`adhoc` is reserved"],
    },
    Case {
        name: "a bidi override in a name is refused",
        file: "[experiment]\nname = \"abc\\u202Exyz\"\n",
        args: &["run", "FILE", "--dry-run", "--no-calibrate"],
        env: &[],
        expect: &["experiment.name", "U+202E"],
    },
    Case {
        name: "a zero-width character in a name is refused",
        file: "[experiment]\nname = \"a\\u200Bb\"\n",
        args: &["run", "FILE", "--dry-run", "--no-calibrate"],
        env: &[],
        expect: &["experiment.name", "U+200B"],
    },
    Case {
        name: "a name that is a path's dot segment is refused",
        file: "[experiment]\nname = \"..\"\n",
        args: &["run", "FILE", "--dry-run", "--no-calibrate"],
        env: &[],
        expect: &["experiment.name", "`..`"],
    },
    Case {
        name: "an integer too large for --set says so",
        file: GOOD,
        args: &["run", "FILE", "--dry-run", "--no-calibrate", "--set", "search.trials=18446744073709551615"],
        env: &[],
        expect: &["--set search.trials", "too large"],
    },
    Case {
        name: "a typo inside --set points gets the file's suggestion",
        file: GOOD,
        args: &["run", "FILE", "--dry-run", "--no-calibrate", "--set", "points=[{learning_rat=1e-3}]"],
        env: &[],
        expect: &["points[0].learning_rat", "did you mean `learning_rate`"],
    },
    Case {
        name: "a missing dataset names --data-dir and PIXELX_DATA_DIR",
        file: GOOD,
        args: &["run", "FILE"],
        env: &[("PIXELX_DATA_DIR", "/nonexistent-pixelx-data")],
        expect: &["--data-dir", "PIXELX_DATA_DIR"],
    },
    Case {
        name: "an unknown status is refused with the choices",
        file: GOOD,
        args: &["report", "--status", "done"],
        env: &[],
        expect: &["done", "completed"],
    },
];

#[test]
fn every_case_fails_with_its_message_and_no_debug_text() {
    let mut failures = Vec::new();
    for case in CASES {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("exp.toml");
        std::fs::write(&file, case.file).unwrap();
        let runs = dir.path().join("runs");
        let args: Vec<&str> = case
            .args
            .iter()
            .map(|a| if *a == "FILE" { file.to_str().unwrap() } else { a })
            .collect();
        let mut cmd = pixelx();
        cmd.arg("--runs-dir").arg(&runs).args(&args);
        for (k, v) in case.env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let missing: Vec<&&str> = case.expect.iter().filter(|e| !text.contains(**e)).collect();
        let debug = [
            "Float(",
            "Integer(",
            "Some(",
            "String(",
            "panicked",
            "LogUniform(",
            "HeaderToo",
        ]
        .iter()
        .any(|d| text.contains(d));
        if out.status.success() || !missing.is_empty() || debug || text.contains("diverged: diverged") {
            failures.push(format!(
                "{} (exit {:?}, missing {missing:?}):\n{text}",
                case.name,
                out.status.code()
            ));
        }
        assert!(
            !runs.exists(),
            "{}: a rejected command wrote {}",
            case.name,
            runs.display()
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n\n")
    );
}

fn run(runs: &Path, args: &[&str]) -> (bool, String) {
    let out = pixelx().arg("--runs-dir").arg(runs).args(args).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The other half of "train honours or rejects PIXELX_*": a valid variable is used (`PIXELX_LR`
/// too, as `--lr` is), and a flag on the command line still wins over it.
#[test]
fn train_honours_pixelx_variables_below_its_flags() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let out = pixelx()
        .arg("--runs-dir")
        .arg(&runs)
        .args([
            "-q",
            "train",
            "--epochs",
            "1",
            "--train-subset",
            "64",
            "--test-subset",
            "32",
        ])
        .args(["--epoch-samples", "0", "--cuda", "false"])
        .args(support::TINY_MODEL)
        .env("PIXELX_LR", "0.004")
        .env("PIXELX_EPOCHS", "3")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reg = support::registry_read_only(&runs);
    let runs = reg.summaries(&Default::default()).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].params["learning_rate"], 0.004,
        "from PIXELX_LEARNING_RATE"
    );
    assert_eq!(runs[0].params["epochs"], 1, "--epochs wins over PIXELX_EPOCHS");
}

/// One registry for two runs folders: a command given the wrong folder says the run's folder is
/// elsewhere, instead of "no checkpoint yet".
#[test]
fn a_run_whose_folder_is_in_another_runs_folder_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("shared.sqlite");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let out = pixelx()
        .arg("--runs-dir")
        .arg(&b)
        .arg("--registry")
        .arg(&registry)
        .args([
            "-q",
            "train",
            "--epochs",
            "1",
            "--train-subset",
            "64",
            "--test-subset",
            "32",
        ])
        .args(["--epoch-samples", "0", "--cuda", "false"])
        .args(support::TINY_MODEL)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    for command in ["eval", "export", "sample"] {
        let mut args = vec![command, id.as_str()];
        if command == "export" {
            args.extend(["--out", "w.safetensors"]);
        }
        let out = pixelx()
            .arg("--runs-dir")
            .arg(&a)
            .arg("--registry")
            .arg(&registry)
            .args(&args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{command}");
        assert!(
            stderr.contains("is in the registry, but its folder") && stderr.contains("--runs-dir"),
            "{command}: {stderr}"
        );
    }
}

#[test]
fn read_only_commands_never_create_a_registry_or_folder() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo");
    for args in [
        vec!["ls"],
        vec!["report"],
        vec!["show", "abc"],
        vec!["report", "--best"],
    ] {
        let (ok, text) = run(&missing, &args);
        assert!(!ok, "{args:?}: {text}");
        assert!(text.contains("no registry"), "{args:?}: {text}");
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
    }
}

#[test]
fn a_corrupt_registry_is_named_with_its_likely_cause() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    let reg = runs.join("registry.sqlite");
    std::fs::write(&reg, vec![0x42u8; 8192]).unwrap();
    let (ok, text) = run(&runs, &["ls"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&reg.display().to_string()) && text.contains("corrupt"),
        "{text}"
    );
}

#[test]
fn ls_marks_running_runs_whose_process_is_gone_and_markdown_escapes_pipes() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let reg_path = runs.join("registry.sqlite");
    {
        let mut reg = pixelx::registry::Registry::open(&reg_path).unwrap();
        let info = pixelx::config::ExperimentInfo {
            name: "a|b".into(),
            ..Default::default()
        };
        let exp = reg.upsert_experiment(&info, None, Default::default()).unwrap();
        let config = pixelx::config::RunConfig::default();
        reg.add_run(exp, "deadbeef0001", &config, &runs.join("deadbeef0001"), None)
            .unwrap();
    }
    let conn = rusqlite::Connection::open(&reg_path).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    conn.execute(
        "UPDATE runs SET status = 'running', pid = 999999, host = ?1",
        [host.trim()],
    )
    .unwrap();
    drop(conn);
    let (ok, text) = run(&runs, &["ls"]);
    assert!(ok, "{text}");
    assert!(text.contains("process gone"), "{text}");
    let (ok, text) = run(&runs, &["report", "--format", "markdown"]);
    assert!(ok && text.contains("a\\|b"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Issue 17: registries that are not what they should be, under every command that reads one.

/// What stands at the `--registry` path before the command runs.
#[derive(Clone, Copy, Debug)]
enum Standing {
    /// A zero-byte file.
    Empty,
    /// A text file.
    NotSqlite,
    /// A folder.
    Folder,
    /// A real registry whose `user_version` a newer pixelx would write.
    Newer,
    /// A real registry with the experiments `alpha` and `beta`, one run each.
    Known,
}

struct RegistryCase {
    name: &'static str,
    registry: Standing,
    args: &'static [&'static str],
    expect: &'static [&'static str],
}

const REGISTRY_CASES: &[RegistryCase] = &[
    RegistryCase {
        name: "serve refuses a zero-byte registry at start",
        registry: Standing::Empty,
        args: &["serve", "--port", "0"],
        expect: &["reg.sqlite", "not a pixelx registry"],
    },
    RegistryCase {
        name: "serve refuses a file that is not a registry at start",
        registry: Standing::NotSqlite,
        args: &["serve", "--port", "0"],
        expect: &["reg.sqlite", "not a pixelx registry"],
    },
    RegistryCase {
        name: "ls says the registry is a folder",
        registry: Standing::Folder,
        args: &["ls"],
        expect: &["reg.sqlite", "is a directory"],
    },
    RegistryCase {
        name: "report says the registry is a folder",
        registry: Standing::Folder,
        args: &["report"],
        expect: &["reg.sqlite", "is a directory"],
    },
    RegistryCase {
        name: "serve says the registry is a folder",
        registry: Standing::Folder,
        args: &["serve", "--port", "0"],
        expect: &["reg.sqlite", "is a directory"],
    },
    RegistryCase {
        name: "a dry run says the registry is a folder",
        registry: Standing::Folder,
        args: &["run", "FILE", "--dry-run", "--no-calibrate"],
        expect: &["reg.sqlite", "is a directory"],
    },
    RegistryCase {
        name: "run says the registry is a folder",
        registry: Standing::Folder,
        args: &["-q", "run", "FILE"],
        expect: &["reg.sqlite", "is a directory"],
    },
    RegistryCase {
        name: "train says the registry is a folder",
        registry: Standing::Folder,
        args: &[
            "train",
            "--epochs",
            "1",
            "--train-subset",
            "64",
            "--test-subset",
            "32",
            "--cuda",
            "false",
        ],
        expect: &["reg.sqlite", "is a directory"],
    },
    RegistryCase {
        name: "ls refuses a registry of a newer schema",
        registry: Standing::Newer,
        args: &["ls"],
        expect: &["reg.sqlite", "schema version 999", "upgrade pixelx"],
    },
    RegistryCase {
        name: "report refuses a registry of a newer schema",
        registry: Standing::Newer,
        args: &["report"],
        expect: &["reg.sqlite", "schema version 999", "upgrade pixelx"],
    },
    RegistryCase {
        name: "serve refuses a registry of a newer schema",
        registry: Standing::Newer,
        args: &["serve", "--port", "0"],
        expect: &["reg.sqlite", "schema version 999", "upgrade pixelx"],
    },
    RegistryCase {
        name: "report names an unknown experiment and the known ones",
        registry: Standing::Known,
        args: &["report", "--experiment", "nosuch"],
        expect: &["no experiment `nosuch`", "alpha, beta"],
    },
];

/// Puts `standing` at `path`.
fn make_registry(path: &Path, standing: Standing) {
    match standing {
        Standing::Empty => std::fs::write(path, b"").unwrap(),
        Standing::NotSqlite => std::fs::write(path, "name,bpd\nrun1,1.2\n".repeat(200)).unwrap(),
        Standing::Folder => std::fs::create_dir(path).unwrap(),
        Standing::Newer | Standing::Known => {
            {
                let mut reg = pixelx::registry::Registry::open(path).unwrap();
                for name in ["alpha", "beta"] {
                    let exp = reg
                        .upsert_experiment(
                            &pixelx::config::ExperimentInfo::named(name, ""),
                            None,
                            Default::default(),
                        )
                        .unwrap();
                    let config = pixelx::config::RunConfig {
                        seed: name.len() as u64,
                        ..Default::default()
                    };
                    let id = format!("{:0>12}", name.len());
                    reg.add_run(exp, &id, &config, &path.with_file_name(&id), None)
                        .unwrap();
                }
            }
            if matches!(standing, Standing::Newer) {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.pragma_update(None, "user_version", 999).unwrap();
            }
        }
    }
}

/// Runs `cmd` to its end, or kills it after `limit` (a server that should have refused to start).
fn output_within(mut cmd: std::process::Command, limit: std::time::Duration) -> (Option<i32>, String) {
    use std::io::Read as _;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ended = support::wait_for(limit, || child.try_wait().unwrap().is_some());
    if !ended {
        child.kill().unwrap();
    }
    let status = child.wait().unwrap();
    let mut text = String::new();
    child.stdout.take().unwrap().read_to_string(&mut text).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut text).unwrap();
    if !ended {
        text += "\n[still running: killed]";
    }
    (status.code(), text)
}

#[test]
fn every_registry_case_fails_with_its_message() {
    let mut failures = Vec::new();
    for case in REGISTRY_CASES {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("exp.toml");
        std::fs::write(&file, GOOD).unwrap();
        let registry = dir.path().join("reg.sqlite");
        make_registry(&registry, case.registry);
        let runs = dir.path().join("runs");
        let args: Vec<&str> = case
            .args
            .iter()
            .map(|a| if *a == "FILE" { file.to_str().unwrap() } else { a })
            .collect();
        let mut cmd = pixelx();
        cmd.arg("--runs-dir")
            .arg(&runs)
            .arg("--registry")
            .arg(&registry)
            .args(&args)
            .current_dir(dir.path());
        let (code, text) = output_within(cmd, std::time::Duration::from_secs(60));
        let missing: Vec<&&str> = case.expect.iter().filter(|e| !text.contains(**e)).collect();
        if code != Some(1) || !missing.is_empty() || text.contains("panicked") {
            failures.push(format!(
                "{} (exit {code:?}, missing {missing:?}):\n{text}",
                case.name
            ));
        }
        if runs.exists() {
            failures.push(format!(
                "{}: a rejected command wrote {}",
                case.name,
                runs.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n\n{}",
        failures.len(),
        REGISTRY_CASES.len(),
        failures.join("\n\n")
    );
}

/// A dry run only estimates, so a newer registry is a warning there (the real run refuses).
#[test]
fn a_dry_run_warns_about_a_registry_of_a_newer_schema_and_run_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exp.toml");
    std::fs::write(&file, GOOD).unwrap();
    let registry = dir.path().join("reg.sqlite");
    make_registry(&registry, Standing::Newer);
    let with = |args: &[&str]| {
        let out = pixelx()
            .arg("--runs-dir")
            .arg(dir.path().join("runs"))
            .arg("--registry")
            .arg(&registry)
            .args(args)
            .arg(&file)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = with(&["run", "--dry-run", "--no-calibrate"]);
    assert!(ok && text.contains("schema version 999"), "{text}");
    let (ok, text) = with(&["run"]);
    assert!(!ok && text.contains("schema version 999"), "{text}");
}

/// Exit codes are decided in one place (`cli/exit.rs`): a worker whose run folder another process
/// holds exits 75 (the coordinator retries it) with the holder named on stderr as is, without the
/// `error:` prefix; a run id that is not one is an ordinary error, exit 1.
#[test]
fn a_busy_worker_exits_75_naming_the_holder_and_a_bad_id_exits_1() {
    use pixelx::execute::lock_path;
    use pixelx::fsio::FileLock;
    use pixelx::run_dir::RunDir;
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let id = "0123456789ab";
    let run = RunDir::create(&runs, id, &pixelx::config::RunConfig::default()).unwrap();
    let _held = FileLock::try_acquire(&lock_path(&run), "pid 1 on host elsewhere since dawn")
        .unwrap()
        .unwrap();
    let out = pixelx()
        .arg("--runs-dir")
        .arg(&runs)
        .args(["worker", id, "--device", "cpu"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!("run {id} is being trained by pid 1 on host elsewhere since dawn")
    );
    assert!(out.stdout.is_empty());

    let out = pixelx()
        .arg("--runs-dir")
        .arg(&runs)
        .args(["worker", "../x"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: `../x` is not a run id"), "{stderr}");
}
