//! Numeric precision of training: fp32 throughout, or bf16 autocast.
//!
//! With `bf16`, libtorch's autocast runs the convolutions of the training forward pass in
//! bfloat16 (tensor cores on recent GPUs) while the weights, gradients, optimiser moments and
//! checkpoints stay fp32, and the loss is taken on fp32 logits. Unlike fp16, bf16 has fp32's
//! exponent range, so no loss scaling is needed. Evaluation and sampling always run in fp32, so
//! test metrics of fp32 and bf16 runs compare directly.
//!
//! tch 0.24 only wraps libtorch's deprecated CUDA-only autocast switch (fixed to fp16); the
//! per-device switch comes from the C++ shim in `csrc/torch_extras.cpp`.

use std::marker::PhantomData;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::Device;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in float32.
    #[default]
    Fp32,
    /// bfloat16 autocast for the training forward pass; fp32 weights and optimiser.
    Bf16,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
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

/// Warns that bf16 training will be slower than fp32 where the CPU emulates bf16.
pub fn warn_if_emulated(precision: Precision, device: Device) {
    if precision == Precision::Bf16 && device == Device::Cpu && !cpu_has_native_bf16() {
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
    /// Enters bf16 autocast for `device` when `precision` asks for it; `None` for fp32.
    pub fn enter(device: Device, precision: Precision) -> Result<Option<Self>> {
        if precision == Precision::Fp32 {
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
}
