//! Where a run stands, as one enum everywhere: the registry stores its name (`as_str`), reads
//! parse it back, and summaries carry the enum.

use anyhow::{bail, Result};

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum RunStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Diverged,
    Interrupted,
    /// Stopped early by a pruner; keeps its checkpoints (`pixelx resume --force` continues it).
    Pruned,
}

impl RunStatus {
    pub const ALL: [RunStatus; 7] = [
        Self::Queued,
        Self::Running,
        Self::Completed,
        Self::Failed,
        Self::Diverged,
        Self::Interrupted,
        Self::Pruned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Diverged => "diverged",
            Self::Interrupted => "interrupted",
            Self::Pruned => "pruned",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match Self::ALL.into_iter().find(|x| x.as_str() == s) {
            Some(x) => Ok(x),
            None => bail!("unknown run status `{s}`"),
        }
    }

    /// Runs in these states are picked up again when their experiment is run again.
    pub fn is_unfinished(self) -> bool {
        matches!(self, Self::Queued | Self::Interrupted | Self::Failed)
    }

    /// States a worker leaves a run in for good (`finished_at` is set).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Diverged | Self::Pruned
        )
    }
}

impl From<crate::journal::FinalStatus> for RunStatus {
    fn from(s: crate::journal::FinalStatus) -> Self {
        use crate::journal::FinalStatus as F;
        match s {
            F::Completed => Self::Completed,
            F::Interrupted => Self::Interrupted,
            F::Failed => Self::Failed,
            F::Diverged => Self::Diverged,
            F::Pruned => Self::Pruned,
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for RunStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A status compares equal to its name, so callers holding a name (a URL, a test) need no parse.
impl PartialEq<str> for RunStatus {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for RunStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl rusqlite::types::FromSql for RunStatus {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let name = value.as_str()?;
        RunStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .ok_or_else(|| {
                rusqlite::types::FromSqlError::Other(format!("unknown run status `{name}`").into())
            })
    }
}

impl rusqlite::types::ToSql for RunStatus {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}
