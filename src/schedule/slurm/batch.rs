//! The batch script `sbatch` gets for a run's job: pure text, no process is spawned here.

use std::fmt::Write as _;

/// What goes into the generated batch script.
#[derive(Debug, Clone, Default)]
pub struct BatchSpec {
    pub job_name: String,
    /// `--output` (stdout and stderr); `%j` is the job id.
    pub output: String,
    /// `--open-mode=append`: keep the previous runs' output after a requeue (default: truncate).
    pub append_output: bool,
    /// `--requeue` (true) or `--no-requeue` (false).
    pub requeue: bool,
    /// `--signal=B:<sig>@<secs>`: the signal goes to the batch shell, i.e. the `exec`ed command.
    /// Without `B:` it would go to job steps only, which this script has none of. Slurm may send
    /// it up to 60 s early.
    pub signal: Option<(String, u32)>,
    pub partition: Option<String>,
    /// `--time`, in Slurm's own format (`HH:MM:SS`, `D-HH:MM`, ...).
    pub time: Option<String>,
    pub cpus_per_task: Option<u32>,
    /// `--gres`, e.g. `gpu:1`.
    pub gres: Option<String>,
    /// `--mem`, as Slurm takes it (`8G`, `4000M`).
    pub mem: Option<String>,
    /// More sbatch options, one per `#SBATCH` line, verbatim (e.g. `--account=x`).
    pub extra: Vec<String>,
    /// The command the job `exec`s: program and arguments.
    pub command: Vec<String>,
}

/// `word` quoted for bash when it needs it.
pub fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-+=:,./@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A value on an `#SBATCH` line: sbatch's own parser takes "..." or '...' quoting.
fn sbatch_value(value: &str) -> Result<String, String> {
    if value.contains(['\n', '\r']) {
        return Err(format!("newline in sbatch option value {value:?}"));
    }
    if !value.is_empty() && !value.contains(|c: char| c.is_whitespace() || "\"'#".contains(c)) {
        Ok(value.to_string())
    } else if !value.contains('"') {
        Ok(format!("\"{value}\""))
    } else if !value.contains('\'') {
        Ok(format!("'{value}'"))
    } else {
        Err(format!("sbatch option value with both quote kinds: {value:?}"))
    }
}

/// `#!/bin/bash`, the `#SBATCH` header, then `exec` of the command.
pub fn render_batch_script(spec: &BatchSpec) -> Result<String, String> {
    if spec.command.is_empty() {
        return Err("batch script needs a command".into());
    }
    let mut opts = vec![
        format!("--job-name={}", sbatch_value(&spec.job_name)?),
        format!("--output={}", sbatch_value(&spec.output)?),
    ];
    if spec.append_output {
        opts.push("--open-mode=append".into());
    }
    opts.push(if spec.requeue { "--requeue" } else { "--no-requeue" }.into());
    if let Some((sig, secs)) = &spec.signal {
        opts.push(format!("--signal=B:{}@{secs}", sbatch_value(sig)?));
    }
    if let Some(p) = &spec.partition {
        opts.push(format!("--partition={}", sbatch_value(p)?));
    }
    if let Some(t) = &spec.time {
        opts.push(format!("--time={}", sbatch_value(t)?));
    }
    if let Some(c) = spec.cpus_per_task {
        opts.push(format!("--cpus-per-task={c}"));
    }
    if let Some(g) = &spec.gres {
        opts.push(format!("--gres={}", sbatch_value(g)?));
    }
    if let Some(m) = &spec.mem {
        opts.push(format!("--mem={}", sbatch_value(m)?));
    }
    for e in &spec.extra {
        if e.contains(['\n', '\r']) {
            return Err(format!("newline in extra sbatch option {e:?}"));
        }
        opts.push(e.trim().to_string());
    }
    let mut script = String::from("#!/bin/bash\n");
    for o in opts {
        writeln!(script, "#SBATCH {o}").expect("writing to a String");
    }
    let argv: Vec<String> = spec.command.iter().map(|w| shell_quote(w)).collect();
    writeln!(script, "exec {}", argv.join(" ")).expect("writing to a String");
    Ok(script)
}
