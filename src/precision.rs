//! Numeric precision of training: fp32 throughout, or bf16 autocast, or `auto` (the default),
//! which picks bf16 where the hardware computes it natively and fp32 elsewhere.
//!
//! With `bf16`, libtorch's autocast runs the convolutions of the training forward pass in
//! bfloat16 (tensor cores on recent GPUs, AVX-512 BF16/AMX on recent CPUs) while the weights,
//! gradients, optimiser moments and checkpoints stay fp32, and the loss is taken on fp32 logits.
//! Unlike fp16, bf16 has fp32's exponent range, so no loss scaling is needed. Evaluation and
//! sampling always run in fp32, so test metrics of fp32 and bf16 runs compare directly.
//!
//! `auto` is resolved once per run, where its worker starts training ([`Precision::resolve`]);
//! the run records the precision it used and keeps it when resumed.
//!
//! tch 0.24 only wraps libtorch's deprecated CUDA-only autocast switch (fixed to fp16); the
//! per-device switch comes from the C++ shim in `csrc/torch_extras.cpp`.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Mutex, OnceLock};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::Device;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// bf16 where the device computes it natively (a CPU with AVX-512 BF16 or AMX-BF16, a GPU of
    /// compute capability 8.0 or more), fp32 elsewhere.
    #[default]
    Auto,
    /// Everything in float32.
    Fp32,
    /// bfloat16 autocast for the training forward pass; fp32 weights and optimiser.
    Bf16,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Auto => "auto",
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }

    /// What a configuration that does not name its precision was written to mean before `auto`
    /// existed: fp32.
    pub fn before_auto() -> Self {
        Precision::Fp32
    }

    /// The precision named `s` (`fp32`, `bf16`, `auto`), as the registry stores it.
    pub fn parse(s: &str) -> Option<Self> {
        [Precision::Auto, Precision::Fp32, Precision::Bf16]
            .into_iter()
            .find(|p| p.as_str() == s)
    }

    /// The precision a run on `device` really trains in: `auto` becomes bf16 where `device`
    /// computes bf16 natively ([`native_bf16`]) and fp32 elsewhere; fp32 and bf16 stay as
    /// written.
    pub fn resolve(self, device: Device) -> Precision {
        match self {
            Precision::Auto if native_bf16(device) => Precision::Bf16,
            Precision::Auto => Precision::Fp32,
            written => written,
        }
    }
}

/// Whether `device` computes bf16 natively: on a CPU, [`cpu_has_native_bf16`]; on a CUDA
/// device, compute capability 8.0 or more (as PyTorch's `torch.cuda.is_bf16_supported`). False
/// where it cannot be told (no CUDA driver, no such device). Each answer is read once per
/// process: estimates ask for every run and slot.
pub fn native_bf16(device: Device) -> bool {
    static CPU: OnceLock<bool> = OnceLock::new();
    static CUDA: OnceLock<Mutex<HashMap<usize, bool>>> = OnceLock::new();
    match device {
        Device::Cpu => *CPU.get_or_init(cpu_has_native_bf16),
        Device::Cuda(ordinal) => {
            let cache = CUDA.get_or_init(Default::default);
            let mut known = cache.lock().unwrap_or_else(|e| e.into_inner());
            *known
                .entry(ordinal)
                .or_insert_with(|| cuda_compute_capability(ordinal).is_some_and(|(major, _)| major >= 8))
        }
        _ => false,
    }
}

/// Whether this machine's CPU computes bf16 natively (AVX-512 BF16 or AMX-BF16, as Linux reports
/// in `/proc/cpuinfo`): there bf16 autocast can be faster than fp32; elsewhere libtorch emulates
/// it and it is slower. False where the flags cannot be read.
pub fn cpu_has_native_bf16() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
        info.lines().filter(|l| l.starts_with("flags")).take(1).any(|l| {
            l.split_whitespace()
                .any(|f| f == "avx512_bf16" || f == "amx_bf16")
        })
    })
}

/// The compute capability (major, minor) of CUDA device `ordinal`, read from the CUDA driver
/// (`libcuda.so.1`, loaded at run time): this works with a CPU-only libtorch and without CUDA
/// headers, and numbers devices as libtorch does (after `CUDA_VISIBLE_DEVICES`, unlike
/// `nvidia-smi -i`). `None` where there is no driver, no such device, or a call fails.
fn cuda_compute_capability(ordinal: usize) -> Option<(i32, i32)> {
    type CuInit = unsafe extern "C" fn(u32) -> i32;
    type CuDeviceGet = unsafe extern "C" fn(*mut i32, i32) -> i32;
    type CuDeviceGetAttribute = unsafe extern "C" fn(*mut i32, i32, i32) -> i32;
    // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR and _MINOR of cuda.h.
    const MAJOR: i32 = 75;
    const MINOR: i32 = 76;
    let ordinal = i32::try_from(ordinal).ok()?;
    // SAFETY: the library is never closed (libtorch loads the same driver), each symbol is cast
    // to the signature cuda.h declares for it, and every pointer passed is valid for writes.
    unsafe {
        let lib = libc::dlopen(c"libcuda.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        if lib.is_null() {
            return None;
        }
        let symbol = |name: &std::ffi::CStr| {
            let p = libc::dlsym(lib, name.as_ptr());
            (!p.is_null()).then_some(p)
        };
        let init: CuInit = std::mem::transmute(symbol(c"cuInit")?);
        let device_get: CuDeviceGet = std::mem::transmute(symbol(c"cuDeviceGet")?);
        let attribute: CuDeviceGetAttribute = std::mem::transmute(symbol(c"cuDeviceGetAttribute")?);
        let mut device = 0;
        if init(0) != 0 || device_get(&mut device, ordinal) != 0 {
            return None;
        }
        let (mut major, mut minor) = (0, 0);
        if attribute(&mut major, MAJOR, device) != 0 || attribute(&mut minor, MINOR, device) != 0 {
            return None;
        }
        Some((major, minor))
    }
}

/// Warns that bf16 training will be slower than fp32 where the CPU emulates bf16.
pub fn warn_if_emulated(precision: Precision, device: Device) {
    if precision == Precision::Bf16 && device == Device::Cpu && !native_bf16(Device::Cpu) {
        tracing::warn!(
            "bf16 on a CPU without native bf16 (avx512_bf16, amx_bf16): emulated, so expect it to be slower than fp32"
        );
    }
}

extern "C" {
    fn pixelx_autocast_enter(cuda: i32, was_enabled: *mut i32, previous_dtype: *mut i32) -> i32;
    fn pixelx_autocast_exit(cuda: i32, was_enabled: i32, previous_dtype: i32) -> i32;
    fn pixelx_autocast_enabled(cuda: i32) -> i32;
}

/// An autocast region on the current thread (libtorch keeps autocast state per thread, hence
/// not `Send`). Dropping it restores whatever state was there before.
pub struct Autocast {
    cuda: i32,
    was_enabled: i32,
    previous_dtype: i32,
    _thread_bound: PhantomData<*const ()>,
}

impl Autocast {
    /// Enters bf16 autocast for `device` when `precision` asks for it (`auto` as it resolves
    /// there); `None` for fp32.
    pub fn enter(device: Device, precision: Precision) -> Result<Option<Self>> {
        if precision.resolve(device) == Precision::Fp32 {
            return Ok(None);
        }
        let cuda = i32::from(device.is_cuda());
        let (mut was_enabled, mut previous_dtype) = (0, 0);
        // SAFETY: both pointers are valid for writes; the shim catches every C++ exception.
        if unsafe { pixelx_autocast_enter(cuda, &mut was_enabled, &mut previous_dtype) } != 0 {
            bail!("libtorch refused to enable bf16 autocast on {device:?}");
        }
        Ok(Some(Self {
            cuda,
            was_enabled,
            previous_dtype,
            _thread_bound: PhantomData,
        }))
    }

    /// Whether autocast is on for `device`'s kind on this thread.
    pub fn is_enabled(device: Device) -> bool {
        // SAFETY: no arguments besides a flag; the shim catches every C++ exception.
        unsafe { pixelx_autocast_enabled(i32::from(device.is_cuda())) == 1 }
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        // SAFETY: restores values the shim itself reported; exceptions are caught there.
        let rc = unsafe { pixelx_autocast_exit(self.cuda, self.was_enabled, self.previous_dtype) };
        if rc != 0 {
            tracing::warn!("libtorch failed to restore the autocast state");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    fn conv_kind() -> Kind {
        let x = Tensor::ones([1, 1, 4, 4], (Kind::Float, Device::Cpu));
        let w = Tensor::ones([2, 1, 3, 3], (Kind::Float, Device::Cpu));
        x.conv2d(&w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1).kind()
    }

    #[test]
    fn bf16_region_runs_convolutions_in_bf16_and_restores_fp32_after() {
        assert_eq!(conv_kind(), Kind::Float);
        {
            let _region = Autocast::enter(Device::Cpu, Precision::Bf16).unwrap();
            assert!(Autocast::is_enabled(Device::Cpu));
            assert_eq!(conv_kind(), Kind::BFloat16);
        }
        assert!(!Autocast::is_enabled(Device::Cpu));
        assert_eq!(conv_kind(), Kind::Float);
    }

    #[test]
    fn a_cuda_region_switches_cuda_autocast_only() {
        // The switch is per device type and needs no GPU, so this checks the mapping here too.
        {
            let _region = Autocast::enter(Device::Cuda(0), Precision::Bf16).unwrap();
            assert!(Autocast::is_enabled(Device::Cuda(0)));
            assert!(!Autocast::is_enabled(Device::Cpu));
            assert_eq!(conv_kind(), Kind::Float);
        }
        assert!(!Autocast::is_enabled(Device::Cuda(0)));
    }

    #[test]
    fn fp32_enters_no_region() {
        assert!(Autocast::enter(Device::Cpu, Precision::Fp32).unwrap().is_none());
        assert_eq!(conv_kind(), Kind::Float);
    }

    #[test]
    fn auto_resolves_by_the_hardware_and_written_precisions_stay() {
        let cpu = if cpu_has_native_bf16() {
            Precision::Bf16
        } else {
            Precision::Fp32
        };
        assert_eq!(Precision::Auto.resolve(Device::Cpu), cpu);
        for written in [Precision::Fp32, Precision::Bf16] {
            assert_eq!(written.resolve(Device::Cpu), written);
            assert_eq!(written.resolve(Device::Cuda(0)), written);
        }
        // No machine has a 100th GPU: unknown means fp32.
        assert_eq!(Precision::Auto.resolve(Device::Cuda(99)), Precision::Fp32);
    }

    #[test]
    fn names_read_back() {
        for p in [Precision::Auto, Precision::Fp32, Precision::Bf16] {
            assert_eq!(Precision::parse(p.as_str()), Some(p));
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        assert_eq!(Precision::parse("fp16"), None);
        assert_eq!(Precision::default(), Precision::Auto);
    }
}
