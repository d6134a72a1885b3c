//! The Slurm client tools as this backend runs them: where a job finds the binary and the
//! folders, the checks before anything is submitted, and a worker requeueing its own job.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::config::SlurmSettings;

/// Absolute paths a job on a compute node runs with (the runs and data folders must be on a
/// filesystem every node shares; the binary and libtorch must be at the same place there).
#[derive(Debug, Clone)]
pub struct WorkerPaths {
    pub exe: PathBuf,
    pub runs_dir: PathBuf,
    pub data_dir: PathBuf,
    pub workdir: PathBuf,
}

impl WorkerPaths {
    pub fn resolve(runs_dir: &Path, data_dir: &Path) -> Result<Self> {
        crate::fsio::create_dir_all(runs_dir)?;
        let abs = |p: &Path| std::fs::canonicalize(p).with_context(|| format!("resolving {}", p.display()));
        Ok(Self {
            exe: std::env::current_exe().context("locating the pixelx binary")?,
            runs_dir: abs(runs_dir)?,
            data_dir: abs(data_dir)?,
            workdir: std::env::current_dir()?,
        })
    }
}

/// Runs a Slurm client tool, returning its stdout; a missing tool is named as such.
pub(super) fn slurm_tool(tool: &str, args: &[String]) -> Result<(bool, String, String)> {
    let out = Command::new(tool).args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow::anyhow!(
                "`scheduler.backend = \"slurm\"`: `{tool}` is not on PATH; run pixelx on a Slurm login \
                 node (or install the Slurm client tools)"
            )
        } else {
            anyhow::Error::new(e).context(format!("running {tool}"))
        }
    })?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    ))
}

/// Checks the `[scheduler.slurm]` settings against the cluster before anything is submitted:
/// the tools are there, the partition exists, GPUs are asked for only where nodes have them, and
/// a job's CPUs fit a node (Slurm would accept it and leave it pending forever).
pub fn preflight(s: &SlurmSettings) -> Result<()> {
    let (ok, _, err) = slurm_tool("sbatch", &["--version".into()])?;
    if !ok {
        bail!("`scheduler.backend = \"slurm\"`: `sbatch --version` failed: {err}");
    }
    let (ok, out, err) = slurm_tool("sinfo", &["--noheader".into(), "--format=%P|%c|%G".into()])?;
    if !ok {
        bail!("`scheduler.backend = \"slurm\"`: cannot reach the cluster (`sinfo`): {err}");
    }
    let rows: Vec<(String, u32, String)> = out
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, '|');
            let name = parts.next()?.trim().trim_end_matches('*').to_owned();
            let cpus = parts.next()?.trim().trim_end_matches('+').parse().unwrap_or(0);
            Some((name, cpus, parts.next()?.trim().to_owned()))
        })
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let in_partition: Vec<&(String, u32, String)> = match &s.partition {
        Some(p) if !names.contains(&p.as_str()) => bail!(
            "`scheduler.slurm.partition`: the cluster has no partition `{p}` (it has: {})",
            names.join(", ")
        ),
        Some(p) => rows.iter().filter(|r| &r.0 == p).collect(),
        None => rows.iter().collect(),
    };
    if s.gpus_per_run > 0 && in_partition.iter().all(|r| !r.2.contains("gpu")) {
        bail!(
            "`scheduler.slurm.gpus_per_run` = {}, but no node {} has GPUs configured as GRES \
             (`sinfo -o %G` shows none); set it to 0 to train on CPUs",
            s.gpus_per_run,
            s.partition
                .as_ref()
                .map_or("of the cluster".into(), |p| format!("in partition `{p}`"))
        );
    }
    let max_cpus = in_partition.iter().map(|r| r.1).max().unwrap_or(0);
    if let Some(c) = s.cpus_per_run.filter(|c| max_cpus > 0 && *c > max_cpus) {
        bail!("`scheduler.slurm.cpus_per_run` = {c}, but the largest node has {max_cpus} CPUs");
    }
    Ok(())
}

/// In a worker that stopped on Slurm's warning (SIGUSR2): requeues its own job, now that the
/// checkpoint is written. Slurm does not requeue a job that exits by itself.
pub fn requeue_if_asked(run_id: &str) -> Result<()> {
    if !crate::signals::REQUEUE.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(());
    }
    let Ok(job) = std::env::var("SLURM_JOB_ID") else {
        return Ok(());
    };
    let (ok, _, err) = slurm_tool("scontrol", &["requeue".into(), job.clone()])?;
    if ok {
        tracing::info!("run {run_id}: checkpointed; job {job} requeued");
    } else {
        tracing::warn!("run {run_id}: checkpointed, but job {job} could not be requeued: {err}");
    }
    Ok(())
}
