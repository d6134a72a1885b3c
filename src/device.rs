//! Device names as users write them (`auto`, `cpu`, `cuda:N`) and what they resolve to.

use anyhow::{bail, Result};
use tch::Device;

/// A device choice before resolution: `auto` depends on the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda(usize),
}

pub fn parse_device(s: &str) -> Result<DeviceChoice> {
    match s.trim() {
        "auto" => Ok(DeviceChoice::Auto),
        "cpu" => Ok(DeviceChoice::Cpu),
        "cuda" => Ok(DeviceChoice::Cuda(0)),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => Ok(DeviceChoice::Cuda(n)),
            _ => bail!("unknown device `{s}`; expected `auto`, `cpu`, `cuda` or `cuda:N`"),
        },
    }
}

/// Resolves a device name against this machine; asking for a GPU that is not there is an error
/// rather than a silent fall-back to CPU, so a sweep never runs on the wrong hardware unnoticed.
pub fn resolve_device(s: &str) -> Result<Device> {
    let count = cuda_device_count();
    match parse_device(s)? {
        DeviceChoice::Auto if count > 0 => Ok(Device::Cuda(0)),
        DeviceChoice::Auto | DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda(n) if n < count => Ok(Device::Cuda(n)),
        DeviceChoice::Cuda(n) => {
            bail!("device cuda:{n} requested but this machine has {count} CUDA device(s)")
        }
    }
}

/// CUDA devices libtorch sees here (0 without a driver or without libtorch's CUDA backend).
pub fn cuda_device_count() -> usize {
    // A no-op after the first call. It loads the backend for processes whose `main` is not
    // pixelx's, but only in time where nothing has asked libtorch about CUDA before (see
    // `load_cuda_backend`).
    let _ = load_cuda_backend();
    if tch::Cuda::is_available() {
        tch::Cuda::device_count().max(0) as usize
    } else {
        0
    }
}

/// The name a device is recorded under.
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cuda(n) => format!("cuda:{n}"),
        _ => "cpu".into(),
    }
}

/// Where the build found libtorch's CUDA backend (`build.rs`); `None` for a CPU-only libtorch.
const TORCH_CUDA_LIB: Option<&str> = option_env!("PIXELX_TORCH_CUDA_LIB");

/// Loads libtorch's CUDA backend (`libtorch_cuda.so`) where this machine has a CUDA driver:
/// `Ok(true)` loaded, `Ok(false)` nothing to load (no driver, or a CPU-only libtorch), `Err` a
/// driver and a CUDA libtorch whose backend did not load, with the loader's reason. Decided
/// once per process.
///
/// The backend is loaded here rather than linked because, linked, the loader mapped it and the
/// CUDA libraries it needs into every process, GPU or not: 0.11 s of the 0.28 s that `pixelx
/// --version` took on a machine without a GPU, and about 300 MiB of memory, in every `pixelx
/// sample` and every worker too.
///
/// It must run before anything asks libtorch about CUDA: libtorch settles whether CUDA exists
/// the first time (any `tch::Cuda` call, `tch::manual_seed`, a CUDA tensor) and keeps that
/// answer for the process. The CLI's `main` calls it first thing; other binaries (benches) and
/// tests that want CUDA must do the same.
pub fn load_cuda_backend() -> Result<bool, String> {
    static LOADED: std::sync::OnceLock<Result<bool, String>> = std::sync::OnceLock::new();
    LOADED
        .get_or_init(|| {
            let Some(built_against) = TORCH_CUDA_LIB else {
                return Ok(false);
            };
            if !cuda_driver_present() {
                return Ok(false);
            }
            // The bare name first: the binary's run path, or `LD_LIBRARY_PATH` where a bundle
            // runs against another copy of the same libtorch (scripts/gpu-check.sh).
            let mut reasons = Vec::new();
            for name in ["libtorch_cuda.so", built_against] {
                match open_global(name) {
                    Ok(()) => return Ok(true),
                    Err(reason) => reasons.push(reason),
                }
            }
            Err(reasons.join("; "))
        })
        .clone()
}

/// [`load_cuda_backend`], and the warning for the user where a driver is there but the backend
/// did not load (what a binary's `main` prints; the CLI's and the speed bench's say the same).
pub fn load_cuda_backend_warning() -> Option<String> {
    load_cuda_backend().err().map(|reason| {
        format!(
            "warning: this machine has a CUDA driver, but libtorch's CUDA backend did not load \
             ({reason}); no CUDA device can be used"
        )
    })
}

/// Whether the CUDA driver library loads here (without it libtorch cannot use a GPU at all).
fn cuda_driver_present() -> bool {
    // SAFETY: dlopen with a valid C string; the handle is kept (libtorch loads the same driver).
    !unsafe { libc::dlopen(c"libcuda.so.1".as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL) }.is_null()
}

/// `dlopen`s a shared library for good, its symbols visible to the libraries loaded after it
/// (as linking it would); the loader's message where it fails.
fn open_global(name: &str) -> Result<(), String> {
    let c_name = std::ffi::CString::new(name).map_err(|e| format!("{name}: {e}"))?;
    // SAFETY: dlopen and dlerror with valid C strings. Loading runs the library's static
    // initialisers, which register libtorch's CUDA kernels and hooks: what linking did at start.
    unsafe {
        if !libc::dlopen(c_name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL).is_null() {
            return Ok(());
        }
        let error = libc::dlerror();
        Err(if error.is_null() {
            format!("{name}: could not be loaded")
        } else {
            std::ffi::CStr::from_ptr(error).to_string_lossy().into_owned()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    /// Whether a library of this name or path is in this process already (loads nothing).
    fn is_loaded(name: &str) -> bool {
        let c_name = std::ffi::CString::new(name).unwrap();
        // SAFETY: RTLD_NOLOAD only looks the library up; a handle it returns is to a loaded one.
        !unsafe { libc::dlopen(c_name.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD) }.is_null()
    }

    /// The test binary started again to run only `test`, an ignored one, with `PIXELX_ALONE` set.
    fn run_alone(test: &str) {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([test, "--exact", "--ignored", "--test-threads", "1"])
            .env("PIXELX_ALONE", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
    }

    #[test]
    fn the_cuda_backend_is_loaded_at_run_time_not_linked() {
        // In a process of its own: in this one, another test may ask libtorch about CUDA (a
        // device count) before or while the backend loads, and libtorch keeps its first answer.
        run_alone("device::tests::cuda_backend_in_a_fresh_process");
    }

    #[test]
    #[ignore = "run by the_cuda_backend_is_loaded_at_run_time_not_linked, in a process of its own"]
    fn cuda_backend_in_a_fresh_process() {
        if std::env::var_os("PIXELX_ALONE").is_none() {
            return; // started by hand with `--ignored`, among others: not alone, so no verdict
        }
        let Some(path) = TORCH_CUDA_LIB else {
            return; // a CPU-only libtorch has no backend to load
        };
        assert!(
            !is_loaded("libtorch_cuda.so"),
            "the test binary links the CUDA backend"
        );
        let cuda_tensor_error = || {
            Tensor::f_zeros([1], (Kind::Float, Device::Cuda(0)))
                .err()
                .map(|e| e.to_string())
        };
        if cuda_driver_present() {
            // A GPU machine: loaded through the driver check, the kernels are there (a tensor
            // is made, or fails for want of a visible device, not of kernels).
            assert_eq!(load_cuda_backend(), Ok(true));
            if let Some(error) = cuda_tensor_error() {
                assert!(!error.contains("'CUDA' backend"), "{error}");
            }
            return;
        }
        assert_eq!(load_cuda_backend(), Ok(false), "no driver, nothing loaded");
        assert!(!is_loaded("libtorch_cuda.so"));
        let error = cuda_tensor_error().expect("no GPU without a driver");
        assert!(error.contains("'CUDA' backend"), "no CUDA kernels yet: {error}");
        // Loaded by hand, it registers its kernels, and what fails now is the device itself,
        // found missing by the backend's own start-up: it works as it did when linked.
        open_global(path).unwrap();
        assert!(is_loaded(path));
        let error = cuda_tensor_error().expect("no GPU without a driver");
        assert!(error.contains("no NVIDIA driver"), "{error}");
        assert!(open_global("libpixelx_no_such_library.so")
            .unwrap_err()
            .contains("libpixelx_no_such_library.so"));
    }
}
