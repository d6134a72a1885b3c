//! A Slurm job's states, exit codes, and what they mean for its run.

use std::str::FromStr;

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

pub(super) fn classify(state: &JobState, reason: &str, exit_code: Option<ExitCode>) -> Outcome {
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
