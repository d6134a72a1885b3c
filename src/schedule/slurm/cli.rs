//! Pure functions around Slurm's command-line tools (22.05 as packaged by Debian 12): build the
//! batch script `sbatch` gets, and parse what `sbatch --parsable`, `squeue` and
//! `scontrol show job -o` print. No process is spawned here.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;

// ---------------------------------------------------------------------------------------------
// sbatch

/// The job id from `sbatch --parsable`: `"42\n"`, or `"42;cluster\n"` on a multi-cluster setup.
pub fn parse_sbatch_parsable(stdout: &str) -> Result<u64, String> {
    let line = stdout.lines().map(str::trim).find(|l| !l.is_empty());
    let line = line.ok_or_else(|| "sbatch printed no job id".to_string())?;
    let id = line.split(';').next().unwrap_or(line);
    id.parse()
        .map_err(|_| format!("unexpected sbatch --parsable output: {line:?}"))
}

// ---------------------------------------------------------------------------------------------
// job states

/// A job state as `squeue --Format=State` / `%T` and `scontrol show job` print it (the long
/// form). Flag states (COMPLETING, REQUEUED, ...) are printed instead of the base state while set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Pending,
    Running,
    Suspended,
    Completed,
    Cancelled,
    Failed,
    Timeout,
    NodeFail,
    Preempted,
    BootFail,
    Deadline,
    OutOfMemory,
    Completing,
    Configuring,
    Requeued,
    RequeueHold,
    RequeueFed,
    Resizing,
    ResvDelHold,
    Revoked,
    Signaling,
    SpecialExit,
    StageOut,
    Stopped,
    /// A state this code does not know, verbatim.
    Other(String),
}

/// Long names and squeue's compact codes (`%t`).
const STATE_NAMES: &[(JobState, &str, &str)] = {
    use JobState::*;
    &[
        (Pending, "PENDING", "PD"),
        (Running, "RUNNING", "R"),
        (Suspended, "SUSPENDED", "S"),
        (Completed, "COMPLETED", "CD"),
        (Cancelled, "CANCELLED", "CA"),
        (Failed, "FAILED", "F"),
        (Timeout, "TIMEOUT", "TO"),
        (NodeFail, "NODE_FAIL", "NF"),
        (Preempted, "PREEMPTED", "PR"),
        (BootFail, "BOOT_FAIL", "BF"),
        (Deadline, "DEADLINE", "DL"),
        (OutOfMemory, "OUT_OF_MEMORY", "OOM"),
        (Completing, "COMPLETING", "CG"),
        (Configuring, "CONFIGURING", "CF"),
        (Requeued, "REQUEUED", "RQ"),
        (RequeueHold, "REQUEUE_HOLD", "RH"),
        (RequeueFed, "REQUEUE_FED", "RF"),
        (Resizing, "RESIZING", "RS"),
        (ResvDelHold, "RESV_DEL_HOLD", "RD"),
        (Revoked, "REVOKED", "RV"),
        (Signaling, "SIGNALING", "SI"),
        (SpecialExit, "SPECIAL_EXIT", "SE"),
        (StageOut, "STAGE_OUT", "SO"),
        (Stopped, "STOPPED", "ST"),
    ]
};

impl FromStr for JobState {
    type Err = std::convert::Infallible;

    /// Long names (`RUNNING`) and compact codes (`R`), case-insensitively; anything else is
    /// [`JobState::Other`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let known = STATE_NAMES
            .iter()
            .find(|(_, long, code)| s.eq_ignore_ascii_case(long) || s.eq_ignore_ascii_case(code));
        Ok(known.map_or_else(|| JobState::Other(s.to_string()), |(state, _, _)| state.clone()))
    }
}

impl std::fmt::Display for JobState {
    /// Slurm's long name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobState::Other(s) => f.write_str(s),
            known => f.write_str(
                STATE_NAMES
                    .iter()
                    .find(|(st, _, _)| st == known)
                    .map_or("?", |(_, long, _)| long),
            ),
        }
    }
}

impl JobState {
    /// Still in the queue or on a node: it may yet run, or its processes may still be alive
    /// (COMPLETING: after the script ended, or during scancel/requeue until KillWait runs out).
    pub fn is_active(&self) -> bool {
        use JobState::*;
        matches!(
            self,
            Pending
                | Running
                | Suspended
                | Completing
                | Configuring
                | Requeued
                | RequeueHold
                | RequeueFed
                | Resizing
                | ResvDelHold
                | Signaling
                | SpecialExit
                | StageOut
                | Stopped
        )
    }

    /// A final state: the job will not run again unless someone requeues it.
    pub fn is_finished(&self) -> bool {
        use JobState::*;
        matches!(
            self,
            Completed
                | Cancelled
                | Failed
                | Timeout
                | NodeFail
                | Preempted
                | BootFail
                | Deadline
                | OutOfMemory
                | Revoked
        )
    }
}

/// What the coordinator needs to know about a job, from its state, reason and exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Waiting in the queue (also after a requeue: PENDING with `restart_count` > 0).
    Pending,
    /// Allocated: running, suspended, or still completing (processes may be alive).
    Running,
    Completed,
    /// Ended badly; the text says how (state, reason, exit code or signal).
    Failed(String),
    Cancelled,
    /// Interrupted by Slurm rather than failed: REQUEUED/REQUEUE_HOLD/SPECIAL_EXIT (held after
    /// `RequeueExitHold`) or PREEMPTED.
    Requeued,
    Unknown(String),
}

/// `ExitCode=<status>:<signal>`: `1:0` exited with 1; `0:9` killed by SIGKILL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExitCode {
    pub status: i32,
    pub signal: i32,
}

impl FromStr for ExitCode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad exit code {s:?}");
        let (status, signal) = s.split_once(':').ok_or_else(bad)?;
        Ok(ExitCode {
            status: status.parse().map_err(|_| bad())?,
            signal: signal.parse().map_err(|_| bad())?,
        })
    }
}

/// Pending reasons after which the job does not start by itself: it can never fit the
/// partition/node, or it is held (release it with `scontrol release`, or cancel it).
pub const STUCK_REASONS: &[&str] = &[
    "BadConstraints",
    "PartitionConfig",
    "PartitionNodeLimit",
    "PartitionTimeLimit",
    "JobHeldUser",
    "JobHeldAdmin",
    "launch_failed_requeued_held",
    "job_requeued_in_held_state",
];

fn classify(state: &JobState, reason: &str, exit_code: Option<ExitCode>) -> Outcome {
    use JobState::*;
    let how = || match exit_code {
        Some(ExitCode { status, signal }) => format!("{state} ({reason}), ExitCode={status}:{signal}"),
        None => format!("{state} ({reason})"),
    };
    match state {
        Pending | ResvDelHold => Outcome::Pending,
        Running | Suspended | Completing | Configuring | Resizing | Signaling | StageOut | Stopped => {
            Outcome::Running
        }
        Completed => Outcome::Completed,
        Cancelled => Outcome::Cancelled,
        Failed | Timeout | NodeFail | BootFail | Deadline | OutOfMemory | Revoked => Outcome::Failed(how()),
        Requeued | RequeueHold | RequeueFed | SpecialExit | Preempted => Outcome::Requeued,
        Other(_) => Outcome::Unknown(how()),
    }
}

// ---------------------------------------------------------------------------------------------
// scontrol show job -o

/// One job as `scontrol show job -o <id>` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    pub id: u64,
    pub name: String,
    pub state: JobState,
    /// `None` when Slurm says `Reason=None`.
    pub reason: Option<String>,
    pub exit_code: Option<ExitCode>,
    /// `NodeList`; `None` while pending.
    pub node: Option<String>,
    /// `Restarts`: how often the job was requeued (`SLURM_RESTART_COUNT` in the job, which is
    /// unset on the first run).
    pub restart_count: u32,
    /// `Requeue=1`: `scontrol requeue` allowed (`--requeue`, the default with `JobRequeue=1`).
    pub requeue: bool,
    pub std_out: Option<String>,
    pub work_dir: Option<String>,
    /// Every field, verbatim (trailing spaces trimmed).
    pub fields: BTreeMap<String, String>,
}

impl JobInfo {
    pub fn outcome(&self) -> Outcome {
        classify(
            &self.state,
            self.reason.as_deref().unwrap_or("None"),
            self.exit_code,
        )
    }

    /// The reason, when the job is pending and will not start without intervention.
    pub fn stuck_reason(&self) -> Option<&str> {
        let reason = self.reason.as_deref()?;
        let pending = matches!(
            self.state,
            JobState::Pending | JobState::SpecialExit | JobState::RequeueHold
        );
        (pending && STUCK_REASONS.contains(&reason)).then_some(reason)
    }
}

/// Fields whose values may contain spaces (and `=`): a value there ends only at a known key.
#[rustfmt::skip]
const FREE_TEXT: &[&str] = &[
    "JobName", "Command", "WorkDir", "Comment", "AdminComment", "SystemComment", "StdErr", "StdIn",
    "StdOut",
];

/// Keys printed by `scontrol show job` (22.05), including ones only present for some jobs.
#[rustfmt::skip]
const KNOWN_KEYS: &[&str] = &[
    "JobId", "ArrayJobId", "ArrayTaskId", "ArrayTaskThrottle", "HetJobId", "HetJobOffset", "HetJobIdSet",
    "JobName", "UserId", "GroupId", "MCS_label", "Priority", "Nice", "Account", "QOS", "JobState", "Reason",
    "Dependency", "Requeue", "Restarts", "BatchFlag", "Reboot", "ExitCode", "DerivedExitCode", "RunTime",
    "TimeLimit", "TimeMin", "SubmitTime", "EligibleTime", "AccrueTime", "StartTime", "EndTime", "Deadline",
    "SuspendTime", "SecsPreSuspend", "LastSchedEval", "Scheduler", "Partition", "AllocNode:Sid",
    "ReqNodeList", "ExcNodeList", "NodeList", "BatchHost", "NumNodes", "NumCPUs", "NumTasks", "CPUs/Task",
    "ReqB:S:C:T", "TRES", "Socks/Node", "NtasksPerN:B:S:C", "CoreSpec", "MinCPUsNode", "MinMemoryCPU",
    "MinMemoryNode", "MinTmpDiskNode", "Features", "DelayBoot", "OverSubscribe", "Contiguous", "Licenses",
    "Network", "Reservation", "Command", "WorkDir", "Comment", "AdminComment", "SystemComment", "StdErr",
    "StdIn", "StdOut", "Power", "TresPerNode", "TresPerJob", "TresPerSocket", "TresPerTask", "TresBind",
    "TresFreq", "CpusPerTres", "MemPerTres", "MailUser", "MailType", "Container", "NtasksPerTRES",
];

fn looks_like_key(key: &str) -> bool {
    key.starts_with(|c: char| c.is_ascii_uppercase())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_/:".contains(c))
}

/// One line of `scontrol show job -o` (`--oneliner`): `Key=value` pairs separated by single
/// spaces, where the values of [`FREE_TEXT`] fields (job name, command with its arguments, paths,
/// comments) may themselves contain spaces and `=`. A value ends where a known key (or, outside
/// free-text fields, any capitalized `Key=`) starts.
pub fn parse_scontrol_show_job(line: &str) -> Result<JobInfo, String> {
    let line = line.trim_end_matches(['\n', '\r']);
    let mut fields: Vec<(String, String)> = Vec::new();
    for token in line.split(' ') {
        let key = token.split_once('=').map(|(k, _)| k);
        let in_free_text = fields
            .last()
            .is_some_and(|(k, _)| FREE_TEXT.contains(&k.as_str()));
        match (key, fields.last_mut()) {
            (Some(k), _) if KNOWN_KEYS.contains(&k) || (!in_free_text && looks_like_key(k)) => {
                let (k, v) = token.split_once('=').expect("has '='");
                fields.push((k.to_string(), v.to_string()));
            }
            (_, Some((_, value))) => {
                value.push(' ');
                value.push_str(token);
            }
            (_, None) => return Err(format!("scontrol output does not start with Key=value: {line:?}")),
        }
    }
    let fields: BTreeMap<String, String> = fields
        .into_iter()
        .map(|(k, v)| (k, v.trim_end().to_string()))
        .collect();
    let get = |k: &str| fields.get(k).map(String::as_str);
    let some = |k: &str| {
        get(k)
            .filter(|v| !v.is_empty() && *v != "(null)")
            .map(str::to_string)
    };
    let id = get("JobId").ok_or_else(|| format!("no JobId in {line:?}"))?;
    let id = id.parse().map_err(|_| format!("bad JobId {id:?}"))?;
    let state = get("JobState").ok_or_else(|| format!("no JobState in {line:?}"))?;
    let restarts = get("Restarts").unwrap_or("0");
    Ok(JobInfo {
        id,
        name: get("JobName").unwrap_or_default().to_string(),
        state: state.parse().expect("infallible"),
        reason: some("Reason").filter(|r| r != "None"),
        exit_code: get("ExitCode").map(str::parse).transpose()?,
        node: some("NodeList"),
        restart_count: restarts
            .parse()
            .map_err(|_| format!("bad Restarts {restarts:?}"))?,
        requeue: get("Requeue") == Some("1"),
        std_out: some("StdOut"),
        work_dir: some("WorkDir"),
        fields,
    })
}

/// All jobs from `scontrol show job -o` (one line each; blank lines skipped).
pub fn parse_scontrol_show_jobs(out: &str) -> Result<Vec<JobInfo>, String> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_scontrol_show_job)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// squeue

/// The `--Format` for [`parse_squeue`]: `|`-terminated fields are printed unpadded; the job name
/// comes last so that it may contain anything but a newline. (Reasons may contain spaces:
/// `job requeued in held state`.)
pub const SQUEUE_FORMAT: &str = "JobID:|,State:|,Reason:|,NodeList:|,RestartCnt:|,Name:";

/// Arguments for one `squeue` call that lists the given jobs, finished ones included (as long as
/// slurmctld keeps them: `MinJobAge`). A job absent from the output is gone: finished longer
/// ago, lost, or never existed. With exactly one id, squeue instead fails (exit 1,
/// `slurm_load_jobs error: Invalid job id specified`) when it does not know the job; with no ids,
/// pass `--user` or filter yourself.
pub fn squeue_args(ids: &[u64]) -> Vec<String> {
    let mut args = vec!["--noheader".to_string(), "--states=all".to_string()];
    if !ids.is_empty() {
        let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
        args.push(format!("--jobs={}", ids.join(",")));
    }
    args.push(format!("--Format={SQUEUE_FORMAT}"));
    args
}

/// One line of `squeue --noheader --Format=`[`SQUEUE_FORMAT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqueueRow {
    pub id: u64,
    pub state: JobState,
    /// `None` for `None`.
    pub reason: Option<String>,
    pub node: Option<String>,
    pub restart_count: u32,
    pub name: String,
}

impl SqueueRow {
    pub fn outcome(&self) -> Outcome {
        classify(&self.state, self.reason.as_deref().unwrap_or("None"), None)
    }
}

pub fn parse_squeue(out: &str) -> Result<Vec<SqueueRow>, String> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let parts: Vec<&str> = line.splitn(6, '|').collect();
            let [id, state, reason, node, restarts, name] = parts[..] else {
                return Err(format!("unexpected squeue line {line:?}"));
            };
            let opt = |s: &str| (!s.is_empty() && s != "None").then(|| s.to_string());
            Ok(SqueueRow {
                id: id
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad job id in squeue line {line:?}"))?,
                state: state.parse().expect("infallible"),
                reason: opt(reason),
                node: opt(node),
                restart_count: restarts
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad RestartCnt in {line:?}"))?,
                name: name.to_string(),
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// batch script

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

#[cfg(test)]
mod tests;
