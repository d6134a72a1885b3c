//! Pure functions around Slurm's command-line tools (22.05 as packaged by Debian 12): parse what
//! `sbatch --parsable`, `squeue` and `scontrol show job -o` print (the batch script `sbatch` gets
//! is built in [`super::batch`]). No process is spawned here.

use std::collections::BTreeMap;

use super::job_state::{classify, ExitCode, JobState, Outcome, STUCK_REASONS};

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

#[cfg(test)]
mod tests;
