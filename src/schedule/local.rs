//! The local backend: one `pixelx worker` process per run on this machine's device slots.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};

use super::backend::{Backend, Ended, Launch, Started};
use crate::run_dir::RunDir;
use crate::slots::Slot;

/// Paths the worker processes are started with.
#[derive(Debug, Clone)]
pub struct WorkerPaths {
    pub runs_dir: PathBuf,
    pub data_dir: PathBuf,
}

struct Running {
    run_id: String,
    child: Child,
    slot: usize,
}

pub struct LocalBackend {
    slots: Vec<Slot>,
    paths: WorkerPaths,
    running: Vec<Running>,
}

impl LocalBackend {
    pub fn new(slots: Vec<Slot>, paths: WorkerPaths) -> Self {
        Self {
            slots,
            paths,
            running: Vec::new(),
        }
    }

    fn spawn(&self, launch: &Launch, slot: &Slot) -> Result<Child> {
        let dir = RunDir::new(&self.paths.runs_dir, &launch.run_id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.worker_log_path())
            .with_context(|| format!("opening {}", dir.worker_log_path().display()))?;
        let exe = std::env::current_exe().context("locating the pixelx binary")?;
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(exe);
        command
            .arg("--runs-dir")
            .arg(&self.paths.runs_dir)
            .arg("--data-dir")
            .arg(&self.paths.data_dir)
            .arg("--threads")
            .arg(slot.threads.to_string())
            .arg("--quiet")
            .args(["worker", &launch.run_id, "--device", &slot.device])
            .args(launch.ask_before_epoch.then_some("--ask-before-epoch"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Own process group: a terminal's Ctrl-C reaches the coordinator only, which forwards
            // one interrupt, so workers checkpoint instead of seeing two signals and quitting.
            .process_group(0);
        // SAFETY: prctl(2) in the child between fork and exec touches no memory of the parent. It
        // asks the kernel to send SIGTERM when the coordinator dies, so no worker outlives it
        // unseen: the worker checkpoints, journals that it stopped, and the next `pixelx run`
        // continues it.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        command.spawn().context("starting a worker process")
    }
}

impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn workers_end_with_coordinator(&self) -> bool {
        true
    }

    fn start(&mut self, launch: &Launch) -> Result<Started> {
        let Some(free) = (0..self.slots.len()).find(|s| self.running.iter().all(|r| r.slot != *s)) else {
            bail!("no free slot for run {}", launch.run_id);
        };
        let child = self.spawn(launch, &self.slots[free])?;
        let started = Started {
            pid: Some(child.id()),
            job: None,
            device: self.slots[free].device.clone(),
        };
        self.running.push(Running {
            run_id: launch.run_id.clone(),
            child,
            slot: free,
        });
        Ok(started)
    }

    fn reap(&mut self) -> Result<Vec<Ended>> {
        let mut ended = Vec::new();
        let mut still = Vec::new();
        for mut r in self.running.drain(..) {
            match r.child.try_wait()? {
                None => still.push(r),
                Some(exit) => {
                    use std::os::unix::process::ExitStatusExt;
                    let cause = match (exit.code(), exit.signal()) {
                        (Some(code), _) => format!("exit code {code}"),
                        (None, Some(sig)) => format!("killed by signal {sig}"),
                        _ => exit.to_string(),
                    };
                    ended.push(Ended {
                        run_id: r.run_id,
                        cause,
                        busy: exit.code() == Some(crate::execute::BUSY_EXIT.into()),
                        cancelled: false,
                    });
                }
            }
        }
        self.running = still;
        Ok(ended)
    }

    fn whereabouts(&self, run_id: &str) -> Option<String> {
        self.running
            .iter()
            .find(|r| r.run_id == run_id)
            .map(|r| self.slots[r.slot].device.clone())
    }

    fn interrupt_all(&mut self) {
        for r in &self.running {
            // SAFETY: kill(2) with a pid we spawned and have not reaped; no memory is touched.
            unsafe {
                libc::kill(r.child.id() as i32, libc::SIGINT);
            }
        }
    }
}
