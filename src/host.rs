//! Facts about this machine and moment that records carry: the time, the host name, whether a
//! process is alive.

/// The current time as RFC 3339 with milliseconds, UTC: how every record is timestamped.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// This machine's name, to tell whether a recorded pid can be checked here.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// Whether a process with this pid exists on this machine (and is not a zombie).
pub fn process_alive(pid: i64) -> bool {
    if pid <= 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Total memory of this machine in bytes (`MemTotal`), if known.
pub fn total_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Memory this process may use in bytes: the machine's, or less where a control group (a Slurm
/// allocation, a container) limits it; None where not even the machine's is known.
pub fn usable_memory() -> Option<u64> {
    let total = total_memory()?;
    let limit = cgroup_memory_limit().unwrap_or(u64::MAX);
    Some(total.min(limit))
}

/// The memory limit of this process's control group (v2 `memory.max`, else v1
/// `memory.limit_in_bytes`), if it has a number there (`max` means none).
fn cgroup_memory_limit() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let read = |path: String| -> Option<u64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    cgroups.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        match controllers {
            "" => read(format!("/sys/fs/cgroup{path}/memory.max")),
            c if c.split(',').any(|c| c == "memory") => {
                read(format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"))
            }
            _ => None,
        }
    })
}

/// Cores this process may use.
pub fn num_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// This process's peak resident memory in MiB (`VmHWM`), 0 where unknown.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Keeps memory that training frees inside the process instead of handing it back to the kernel.
///
/// A training step allocates and frees the same few-megabyte activations every step. glibc's
/// defaults give them back: blocks past the mmap threshold are unmapped when freed, and the heap
/// top is trimmed once more than the trim threshold is free there, so the next step faults the
/// pages in and zeroes them again (five times the page faults, 10–15% of a small model's step on
/// the 2-core CPU, `just bench training`). Setting the thresholds also turns off glibc's dynamic
/// adjustment of them: blocks below 32 MiB (the largest mmap threshold glibc accepts) now come
/// from the heap, which is never trimmed, and grows 256 MiB beyond each request (untouched pages
/// cost no memory) so that the first steps reach their peak in a few `brk` calls.
///
/// The process then keeps its peak; so only processes whose peak is their training's call it
/// (a trainer, the speed benchmark), not the coordinator, whose calibration peaks before a sweep.
/// A no-op after the first call, and off glibc.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            const MIB: i32 = 1 << 20;
            let settings = [
                (libc::M_MMAP_THRESHOLD, 32 * MIB),
                (libc::M_TRIM_THRESHOLD, i32::MAX),
                (libc::M_TOP_PAD, 256 * MIB),
            ];
            for (param, value) in settings {
                // SAFETY: mallopt only sets allocator parameters; it is safe to call at any time.
                if unsafe { libc::mallopt(param, value) } == 0 {
                    tracing::debug!(param, value, "mallopt refused a setting");
                }
            }
        });
    }
}
