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

pub fn cuda_device_count() -> usize {
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
