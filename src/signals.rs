//! Stop requests from signals, shared by every command that trains or coordinates.
//!
//! The first SIGINT, SIGTERM or SIGHUP asks for a clean stop (training checkpoints at the next
//! step); a second one stops at once, after a last action (recording the run as interrupted).
//! SIGUSR2 is Slurm's warning before a time limit or preemption: checkpoint, then requeue.

use std::sync::atomic::{AtomicBool, Ordering};

/// Raised by the first stop signal (or SIGUSR2).
pub static STOP: AtomicBool = AtomicBool::new(false);
/// Raised by SIGUSR2: the stop is a Slurm requeue, not the user's.
pub static REQUEUE: AtomicBool = AtomicBool::new(false);

/// Exit code of a command that stopped on a signal (128 + SIGINT, as shells report it).
pub const INTERRUPTED_EXIT: u8 = 130;

extern "C" fn on_usr2(_: libc::c_int) {
    // Only atomics here: this runs inside the signal handler.
    REQUEUE.store(true, Ordering::SeqCst);
    STOP.store(true, Ordering::SeqCst);
}

/// Installs the handlers. `first` is printed on the first stop signal (None: nothing, when
/// the caller reports it itself); `on_force` runs on the second, just before the process exits
/// with [`INTERRUPTED_EXIT`].
pub fn install(first: Option<&'static str>, on_force: impl Fn() + Send + 'static) {
    let _ = ctrlc::set_handler(move || {
        if STOP.swap(true, Ordering::SeqCst) {
            eprintln!("second interrupt: stopping now");
            on_force();
            use std::io::Write;
            let _ = std::io::stdout().flush();
            // SAFETY: `_exit` ends the process at once. `exit` would run libtorch's static
            // destructors while the main thread may still be inside a torch call, which can
            // crash the process (a signal instead of exit code 130).
            unsafe { libc::_exit(INTERRUPTED_EXIT.into()) }
        }
        if let Some(text) = first {
            eprintln!("{text}");
        }
    });
    // SAFETY: installs a handler that only stores to atomics, which is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGUSR2,
            on_usr2 as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
}

pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
