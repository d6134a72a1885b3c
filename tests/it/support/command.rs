//! A command whose failure explains itself (as ripgrep's `TestCommand`): when a command that
//! had to succeed fails, or one that had to fail succeeds, the panic shows the command line,
//! the folder it worked in with that folder's listing, its exit status, stdout and stderr.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct TestCommand {
    cmd: Command,
    /// The folder the command works on (a runs folder, or its working directory): listed on failure.
    dir: PathBuf,
}

impl TestCommand {
    /// Any command, reported with the folder `dir` it works on.
    pub fn new(cmd: Command, dir: &Path) -> Self {
        Self {
            cmd,
            dir: dir.to_owned(),
        }
    }

    /// `pixelx --runs-dir <runs>` ([`super::pixelx`]: real MNIST, one thread).
    pub fn pixelx_in(runs: &Path) -> Self {
        let mut cmd = super::pixelx();
        cmd.arg("--runs-dir").arg(runs);
        Self::new(cmd, runs)
    }

    pub fn arg(&mut self, arg: impl AsRef<std::ffi::OsStr>) -> &mut Self {
        self.cmd.arg(arg);
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// The command itself, for settings this type has no method for (environment, stdin…).
    pub fn cmd(&mut self) -> &mut Command {
        &mut self.cmd
    }

    /// Runs it to the end and returns what it left, whatever its status.
    pub fn output(&mut self) -> Output {
        self.cmd
            .output()
            .unwrap_or_else(|e| panic!("could not start {:?}: {e}", self.cmd))
    }

    /// Runs it: (success, stdout, stderr).
    pub fn run(&mut self) -> (bool, String, String) {
        let out = self.output();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    }

    /// Runs it, which must succeed, and returns its stdout.
    pub fn stdout(&mut self) -> String {
        let out = self.output();
        if !out.status.success() {
            panic!("{}", self.report("the command failed but had to succeed", &out));
        }
        text(&out.stdout)
    }

    /// Runs it, which must fail, and returns its stderr.
    pub fn stderr_of_failure(&mut self) -> String {
        let out = self.output();
        if out.status.success() {
            panic!("{}", self.report("the command succeeded but had to fail", &out));
        }
        text(&out.stderr)
    }

    /// What a failing test prints about this command and what it left.
    pub fn report(&self, what: &str, out: &Output) -> String {
        let mut s = format!("\n\n==========\n{what}\n\ncommand: {:?}\n", self.cmd);
        if let Some(cwd) = self.cmd.get_current_dir() {
            let _ = writeln!(s, "working directory: {}", cwd.display());
        }
        let _ = writeln!(s, "folder: {}\n{}", self.dir.display(), listing(&self.dir));
        let _ = write!(
            s,
            "status: {}\n\nstdout:\n{}\n\nstderr:\n{}\n==========\n",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        s
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The folder's files and folders, three levels deep and at most 200 lines, with sizes.
pub fn listing(dir: &Path) -> String {
    let mut lines = Vec::new();
    walk(dir, dir, 0, &mut lines);
    if lines.is_empty() {
        return "  (empty or missing)\n".into();
    }
    let more = lines.len().saturating_sub(200);
    lines.truncate(200);
    if more > 0 {
        lines.push(format!("  … and {more} more"));
    }
    lines.join("\n") + "\n"
}

fn walk(root: &Path, dir: &Path, depth: usize, lines: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let rel = path.strip_prefix(root).unwrap_or(&path).display().to_string();
        let meta = std::fs::symlink_metadata(&path);
        match meta {
            Ok(m) if m.is_dir() => {
                lines.push(format!("  {rel}/"));
                if depth < 2 {
                    walk(root, &path, depth + 1, lines);
                }
            }
            Ok(m) if m.file_type().is_symlink() => lines.push(format!("  {rel} (symlink)")),
            Ok(m) => lines.push(format!("  {rel} ({} bytes)", m.len())),
            Err(e) => lines.push(format!("  {rel} ({e})")),
        }
    }
}

#[test]
fn a_failure_report_shows_the_command_its_folder_and_what_it_printed() {
    let runs = tempfile::tempdir().unwrap();
    std::fs::write(runs.path().join("left-behind.txt"), "abc").unwrap();
    std::fs::create_dir(runs.path().join("a-run")).unwrap();
    let mut cmd = TestCommand::pixelx_in(runs.path());
    cmd.args(["show", "0123456789ab"]);
    let stderr = cmd.stderr_of_failure();
    assert!(!stderr.is_empty());
    let out = cmd.output();
    let report = cmd.report("the command failed", &out);
    for part in [
        "the command failed",
        "\"show\" \"0123456789ab\"",
        &format!("folder: {}", runs.path().display()),
        "a-run/",
        "left-behind.txt (3 bytes)",
        &stderr,
    ] {
        assert!(
            report.contains(part),
            "`{part}` is missing from the report:{report}"
        );
    }
}
