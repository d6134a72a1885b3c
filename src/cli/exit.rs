//! How a command ends, as an exit status and a last message: decided here only (as just's
//! `Error::code`). Commands return `Result<()>`; an error's type says how the process ends:
//!
//! - success: 0;
//! - [`Interrupted`]: stopped by a signal, its message on stdout, 130 ([`INTERRUPTED_EXIT`]);
//! - [`WorkerStopped`]: a worker stopped by a signal, nothing printed (its journal says so), 130;
//! - [`WorkerBusy`]: a worker whose run another process holds, the reason on stderr as is, 75
//!   ([`BUSY_EXIT`]), which the coordinator reads as "try again later";
//! - any other error: `error: ` and its context chain on stderr, 1.
//!
//! The one exit outside this path is the second Ctrl-C, which ends the process from the signal
//! handler at once (`signals::install`), with the same 130.

use std::process::ExitCode;

use crate::execute::BUSY_EXIT;
use crate::signals::INTERRUPTED_EXIT;

/// A command that stopped on a signal: its message is printed as is and the process exits 130.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Interrupted(pub String);

/// A worker that stopped on a signal, its run checkpointed and journalled: exits 130 silently.
#[derive(Debug, thiserror::Error)]
#[error("stopped by a signal")]
pub struct WorkerStopped;

/// A worker whose run is held by another process: the reason is printed as is, exit 75.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct WorkerBusy(pub anyhow::Error);

/// The exit status of a command that failed with `e`.
pub fn code(e: &anyhow::Error) -> u8 {
    if e.is::<Interrupted>() || e.is::<WorkerStopped>() {
        INTERRUPTED_EXIT
    } else if e.is::<WorkerBusy>() {
        BUSY_EXIT
    } else {
        1
    }
}

/// Prints how the command ended (nothing on success) and returns the process's exit status.
pub fn finish(result: anyhow::Result<()>) -> ExitCode {
    let Err(e) = result else {
        return ExitCode::SUCCESS;
    };
    if let Some(i) = e.downcast_ref::<Interrupted>() {
        println!("{i}");
    } else if let Some(busy) = e.downcast_ref::<WorkerBusy>() {
        eprintln!("{busy}");
    } else if !e.is::<WorkerStopped>() {
        eprintln!("error: {e:#}");
    }
    ExitCode::from(code(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn each_ending_has_its_code_even_under_context() {
        let interrupted = anyhow::Error::from(Interrupted("stopped".into()));
        assert_eq!(code(&interrupted), 130);
        assert_eq!(code(&WorkerStopped.into()), 130);
        assert_eq!(code(&WorkerBusy(anyhow::anyhow!("held")).into()), 75);
        assert_eq!(code(&anyhow::anyhow!("plain")), 1);
        let wrapped = Err::<(), _>(Interrupted("x".into()))
            .context("while running")
            .unwrap_err();
        assert_eq!(code(&wrapped), 130);
    }
}
