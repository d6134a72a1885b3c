//! The shell integration: `pixelx completions` scripts (run in a real bash against a registry
//! with a real trained run), the hidden `__complete-runs` they call, and `pixelx man` pages.
//! Belongs here: completions, `__complete-runs` and man pages.

use std::path::Path;
use std::process::Command;

use crate::support::{pixelx, run_in, TINY_MODEL};

/// Trains one tiny run (one epoch on 64 MNIST images) into `runs` and returns its id.
fn trained_run(runs: &Path) -> String {
    let mut args = vec![
        "train",
        "--epochs",
        "1",
        "--train-subset",
        "64",
        "--test-subset",
        "32",
        "--epoch-samples",
        "0",
        "--device",
        "cpu",
    ];
    args.extend(TINY_MODEL);
    let (ok, _, err) = run_in(runs, &args);
    assert!(ok, "{err}");
    let (ok, out, err) = run_in(runs, &["report", "--format", "json"]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    report["runs"][0]["id"].as_str().unwrap().to_owned()
}

/// `pixelx completions SHELL`, checked to succeed.
fn script(shell: &str) -> String {
    let out = pixelx().args(["completions", shell]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Sources the bash script in a real `bash` and completes each line (its words; the last one is
/// the word being completed) the way bash's programmable completion calls the registered
/// function. Returns `complete -p pixelx` and, per line, COMPREPLY.
fn complete_in_bash(dir: &Path, lines: &[&[&str]]) -> (String, Vec<Vec<String>>) {
    let file = dir.join("pixelx.bash");
    std::fs::write(&file, script("bash")).unwrap();
    let mut program = format!(
        "set -u\nsource '{}'\ncomplete -p pixelx\n\
         drive() {{\n  COMP_WORDS=(\"$@\"); COMP_CWORD=$(( $# - 1 )); COMP_LINE=\"$*\"; COMP_POINT=${{#COMP_LINE}}\n  \
         COMPREPLY=()\n  local fn=$(complete -p pixelx | sed -E 's/.*-F ([^ ]+).*/\\1/')\n  \
         \"$fn\" pixelx \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n  \
         echo \"REPLY ${{COMPREPLY[*]}}\"\n}}\n",
        file.display()
    );
    for words in lines {
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        program += &format!("drive {}\n", quoted.join(" "));
    }
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_pixelx")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .env("PATH", path)
        .env_remove("PIXELX_RUNS_DIR")
        .env_remove("PIXELX_REGISTRY")
        .current_dir(dir)
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replies = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("REPLY"))
        .map(|r| r.split_whitespace().map(str::to_owned).collect())
        .collect();
    (stdout.lines().next().unwrap_or_default().to_owned(), replies)
}

#[test]
fn bash_completes_subcommands_flags_and_run_ids_from_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let id = trained_run(&runs);
    let runs_arg = runs.to_str().unwrap();
    let elsewhere = dir.path().join("elsewhere");
    let registry = runs.join("registry.sqlite");
    let (registered, replies) = complete_in_bash(
        dir.path(),
        &[
            &["pixelx", "re"],
            &["pixelx", "report", "--fo"],
            &["pixelx", "eval", "--format", ""],
            // Run ids: the default runs folder (the working directory's `runs/`), a prefix,
            // --runs-dir before or after the command, `--runs-dir=` and --registry.
            &["pixelx", "show", ""],
            &["pixelx", "resume", &id[..3]],
            &["pixelx", "--runs-dir", runs_arg, "eval", &id[..2]],
            &["pixelx", "export", "--runs-dir", runs_arg, ""],
            &[
                "pixelx",
                "--runs-dir=/nowhere",
                "--registry",
                registry.to_str().unwrap(),
                "sample",
                "",
            ],
            // Not where a run id goes: a second positional, another command, a non-id prefix.
            &["pixelx", "show", &id, ""],
            &["pixelx", "report", ""],
            &["pixelx", "show", "zz"],
            // No registry there: no candidates, and nothing is created.
            &["pixelx", "--runs-dir", elsewhere.to_str().unwrap(), "show", ""],
        ],
    );
    assert!(
        registered.starts_with("complete ") && registered.ends_with(" pixelx"),
        "{registered}"
    );
    let expect_ids = vec![id.clone()];
    assert_eq!(replies.len(), 12, "{replies:?}");
    assert_eq!(replies[0], ["report", "resume"]);
    assert_eq!(replies[1], ["--format"]);
    assert_eq!(replies[2], ["text", "json"]);
    for (i, reply) in replies[3..8].iter().enumerate() {
        assert_eq!(reply, &expect_ids, "run-id line {i}");
    }
    assert!(!replies[8].contains(&id), "{:?}", replies[8]);
    assert!(replies[8].contains(&"--runs-dir".to_owned()), "{:?}", replies[8]);
    assert!(!replies[9].contains(&id), "{:?}", replies[9]);
    assert!(replies[10].is_empty(), "{:?}", replies[10]);
    assert!(replies[11].is_empty(), "{:?}", replies[11]);
    assert!(!elsewhere.exists(), "completion created {}", elsewhere.display());
}

#[test]
fn complete_runs_lists_prefix_matches_and_never_creates_a_registry() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let id = trained_run(&runs);
    let list = |runs: &Path, prefix: &str| {
        let (ok, out, err) = run_in(runs, &["__complete-runs", prefix]);
        assert!(ok, "{err}");
        out.lines().map(str::to_owned).collect::<Vec<_>>()
    };
    assert_eq!(list(&runs, ""), vec![id.as_str()]);
    assert_eq!(list(&runs, &id[..4]), vec![id.as_str()]);
    let other = if id.starts_with('0') { "1" } else { "0" };
    assert!(list(&runs, other).is_empty());
    assert!(list(&runs, "not-hex").is_empty());
    let missing = dir.path().join("missing");
    assert!(list(&missing, "").is_empty());
    assert!(!missing.exists(), "__complete-runs created {}", missing.display());
    let help = pixelx().arg("--help").output().unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("__complete-runs"));
}

#[test]
fn every_shell_gets_a_script_naming_the_commands() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let s = script(shell);
        for word in ["report", "resume", "runs-dir", "completions"] {
            assert!(s.contains(word), "{shell} script lacks {word}");
        }
        // The hidden commands, by name and by their help text.
        for hidden in ["worker", "one a line, for the completion scripts"] {
            assert!(
                !s.contains(hidden),
                "{shell} script offers a hidden command ({hidden})"
            );
        }
    }
    let fish = script("fish");
    assert!(
        fish.contains("__fish_seen_subcommand_from show resume sample eval export")
            && fish.contains("pixelx __complete-runs (commandline -ct)"),
        "{fish}"
    );
    let bad = pixelx().args(["completions", "tcsh"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bash"));
}

#[test]
fn man_prints_the_page_or_writes_one_per_command() {
    let out = pixelx().arg("man").output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH pixelx 1"), "{page}");
    assert!(
        page.contains("completions") && page.contains(r"\-\-runs\-dir"),
        "{page}"
    );

    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    let out = pixelx().arg("man").arg("--out-dir").arg(&pages).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for name in [
        "pixelx.1",
        "pixelx-run.1",
        "pixelx-eval.1",
        "pixelx-completions.1",
    ] {
        let text = std::fs::read_to_string(pages.join(name)).unwrap();
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{name}");
    }
    let names: Vec<String> = std::fs::read_dir(&pages)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("worker") || n.contains("complete-runs")),
        "{names:?}"
    );
}
