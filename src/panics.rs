//! libtorch errors that `tch` turns into panics (an allocation that fails, a shape it rejects),
//! caught and returned as errors with libtorch's message, so a run fails with a reason instead of
//! a Rust backtrace.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;

use anyhow::{anyhow, Result};

thread_local! {
    static CATCHING: Cell<bool> = const { Cell::new(false) };
}

/// Keeps the default panic message for real bugs, and stays quiet for panics [`catch`] turns
/// into errors. Installed once at start-up.
pub fn install_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !CATCHING.with(Cell::get) {
            default(info);
        }
    }));
}

/// Runs `f`, turning a panic inside it into an error that says what was being done.
pub fn catch<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let was = CATCHING.with(|c| c.replace(true));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(was));
    match result {
        Ok(r) => r,
        Err(payload) => {
            let text = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown error".into());
            Err(anyhow!("{what} failed in libtorch: {}", torch_message(&text)))
        }
    }
}

/// The useful part of a tch panic message (`called Result::unwrap() on an Err value:
/// Torch("...")`): libtorch's own first line.
fn torch_message(text: &str) -> String {
    let inner = text
        .split_once("Torch(\"")
        .map(|(_, rest)| rest.split("\\n").next().unwrap_or(rest))
        .unwrap_or(text);
    inner.trim_end_matches("\")").trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_with_its_message() {
        install_hook();
        let r: Result<()> = catch("sampling", || {
            panic!("called `Result::unwrap()` on an `Err` value: Torch(\"DefaultCPUAllocator: not enough memory\\nmore\")")
        });
        let e = r.unwrap_err().to_string();
        assert_eq!(
            e,
            "sampling failed in libtorch: DefaultCPUAllocator: not enough memory"
        );
        assert_eq!(catch("x", || Ok(3)).unwrap(), 3);
    }
}
