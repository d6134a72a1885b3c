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

/// Ends the process with how the command ended ([`finish`]), without running libtorch's C++
/// static destructors: they unregister its thousands of operators one by one and free what
/// start-up allocated, about a tenth of a short command's time (`pixelx sample`, `ls`), and the
/// operating system reclaims all of it anyway. Only what the command left buffered has to be
/// written: Rust's stdout and stderr. Everything of pixelx's own (registry connections, files,
/// locks, temporary folders) was dropped when the command returned.
pub fn leave(result: anyhow::Result<()>) -> ! {
    let code = finish(result);
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` ends the process at once; nothing of this program is pending past the
    // flushes above (its threads are either done or, like any thread at exit, abandoned).
    unsafe { libc::_exit(i32::from(code)) }
}

/// Prints how the command ended (nothing on success) and returns the process's exit status.
pub fn finish(result: anyhow::Result<()>) -> u8 {
    let Err(e) = result else {
        return 0;
    };
    if let Some(i) = e.downcast_ref::<Interrupted>() {
        println!("{i}");
    } else if let Some(busy) = e.downcast_ref::<WorkerBusy>() {
        eprintln!("{busy}");
    } else if !e.is::<WorkerStopped>() {
        eprintln!("error: {e:#}");
    }
    code(&e)
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
