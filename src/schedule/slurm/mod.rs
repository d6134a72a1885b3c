//! The Slurm backend: one batch job per run, submitted with `sbatch`, watched with `squeue`,
//! signalled and cancelled with `scancel`.
//!
//! A job's script (`runs/<id>/slurm/job.sh`) `exec`s `pixelx worker`, which writes only the run's
//! folder: the registry is never opened on a compute node (SQLite's locking is unreliable on
//! network filesystems). Jobs are submitted `--requeue` with `--signal=B:USR2@<grace>`: before a
//! time limit or preemption the worker checkpoints mid-epoch and requeues its own job, which
//! resumes exactly where it stopped. One job per run rather than a job array, because an
//! adaptive search needs the results of earlier runs before it proposes the next, and a pruner
//! answers each run between epochs; an array pays off for a fixed grid of thousands of short runs,
//! which `max_jobs` in flight handles here too.

pub mod batch;
pub mod cli;
pub mod job_state;
mod tools;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::backend::{Backend, Ended, Launch, Started};
use crate::config::SlurmSettings;
use crate::run_dir::RunDir;
use batch::BatchSpec;
use cli::SqueueRow;
use job_state::Outcome;
use tools::slurm_tool;
pub use tools::{preflight, requeue_if_asked, WorkerPaths};

/// How often squeue is asked (each call costs the controller a little).
const POLL_EVERY: Duration = Duration::from_secs(1);

/// The job name of a run, checked on every poll: Slurm may reuse the id of a job it lost.
fn job_name(run_id: &str) -> String {
    format!("pixelx-{run_id}")
}

struct Job {
    run_id: String,
    id: u64,
    /// Its row in the latest squeue answer.
    last: Option<SqueueRow>,
    /// Listed by squeue at least once.
    seen: bool,
    submitted: Instant,
}

impl Job {
    fn new(run_id: &str, id: u64) -> Self {
        Self {
            run_id: run_id.to_owned(),
            id,
            last: None,
            seen: false,
            submitted: Instant::now(),
        }
    }
}

/// How long a submitted job may stay unlisted by squeue before it counts as lost.
const UNLISTED_GRACE: Duration = Duration::from_secs(60);

pub struct SlurmBackend {
    settings: SlurmSettings,
    paths: WorkerPaths,
    jobs: Vec<Job>,
    last_poll: Option<Instant>,
}

impl SlurmBackend {
    pub fn new(settings: SlurmSettings, paths: WorkerPaths) -> Result<Self> {
        Ok(Self {
            settings,
            paths,
            jobs: Vec::new(),
            last_poll: None,
        })
    }

    /// The batch script of a run's job.
    pub fn script(&self, launch: &Launch) -> Result<String> {
        let s = &self.settings;
        let run = RunDir::new(&self.paths.runs_dir, &launch.run_id);
        let mut command: Vec<String> = vec![
            self.paths.exe.display().to_string(),
            "--runs-dir".into(),
            self.paths.runs_dir.display().to_string(),
            "--data-dir".into(),
            self.paths.data_dir.display().to_string(),
        ];
        if let Some(c) = s.cpus_per_run {
            command.extend(["--threads".into(), c.to_string()]);
        }
        // Slurm gives the job its GPUs as CUDA_VISIBLE_DEVICES, so the first visible one is it.
        let device = if s.gpus_per_run > 0 { "cuda:0" } else { "cpu" };
        command.extend(["--quiet".into(), "worker".into(), launch.run_id.clone()]);
        command.extend(["--device".into(), device.into()]);
        if launch.ask_before_epoch {
            command.push("--ask-before-epoch".into());
        }
        let spec = BatchSpec {
            job_name: job_name(&launch.run_id),
            output: run.slurm_dir().join("job-%j.out").display().to_string(),
            append_output: true,
            requeue: true,
            signal: Some(("USR2".into(), s.signal_grace)),
            partition: s.partition.clone(),
            time: s.time.clone(),
            cpus_per_task: s.cpus_per_run,
            gres: (s.gpus_per_run > 0).then(|| format!("gpu:{}", s.gpus_per_run)),
            mem: s.mem.clone(),
            extra: s.extra.clone(),
            command,
        };
        batch::render_batch_script(&spec).map_err(anyhow::Error::msg)
    }

    fn poll(&mut self, force: bool) -> Result<()> {
        if !force && self.last_poll.is_some_and(|t| t.elapsed() < POLL_EVERY) {
            return Ok(());
        }
        self.last_poll = Some(Instant::now());
        if self.jobs.is_empty() {
            return Ok(());
        }
        let ids: Vec<u64> = self.jobs.iter().map(|j| j.id).collect();
        let (ok, out, err) = slurm_tool("squeue", &cli::squeue_args(&ids))?;
        let rows = if ok {
            cli::parse_squeue(&out).map_err(anyhow::Error::msg)?
        } else if err.contains("Invalid job id") {
            // One id asked for and Slurm no longer knows it.
            Vec::new()
        } else {
            // The controller is unreachable: nothing is known, nothing is concluded.
            tracing::warn!("squeue failed (will retry): {err}");
            return Ok(());
        };
        let by_id: HashMap<u64, SqueueRow> = rows.into_iter().map(|r| (r.id, r)).collect();
        for job in &mut self.jobs {
            job.last = by_id
                .get(&job.id)
                .filter(|r| r.name == job_name(&job.run_id))
                .cloned();
            job.seen |= job.last.is_some();
        }
        Ok(())
    }

    fn cancel(&self, ids: &[u64], extra: &[&str]) {
        if ids.is_empty() {
            return;
        }
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        args.extend(ids.iter().map(u64::to_string));
        if let Ok((false, _, err)) = slurm_tool("scancel", &args) {
            tracing::warn!("scancel {}: {err}", args.join(" "));
        }
    }

    /// Slurm's account of a job that ended badly: state, reason and exit code.
    fn failure(job: u64, how: &str) -> String {
        let exit = slurm_tool(
            "scontrol",
            &["show".into(), "job".into(), "-o".into(), job.to_string()],
        )
        .ok()
        .filter(|(ok, ..)| *ok)
        .and_then(|(_, out, _)| cli::parse_scontrol_show_job(out.lines().next()?).ok())
        .and_then(|j| j.exit_code)
        .map(|e| format!(", exit code {}:{}", e.status, e.signal))
        .unwrap_or_default();
        if how.contains("ExitCode") {
            format!("Slurm job {job}: {how}")
        } else {
            format!("Slurm job {job}: {how}{exit}")
        }
    }
}

impl Backend for SlurmBackend {
    fn name(&self) -> &'static str {
        "slurm"
    }

    fn capacity(&self) -> usize {
        self.settings.max_jobs
    }

    fn start(&mut self, launch: &Launch) -> Result<Started> {
        let run = RunDir::new(&self.paths.runs_dir, &launch.run_id);
        let dir = run.slurm_dir();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let script = dir.join("job.sh");
        crate::fsio::write_atomically(&script, self.script(launch)?.as_bytes())?;
        let args = vec![
            "--parsable".into(),
            format!("--chdir={}", self.paths.workdir.display()),
            script.display().to_string(),
        ];
        let (ok, out, err) = slurm_tool("sbatch", &args)?;
        if !ok {
            bail!("sbatch refused the job of run {}: {err}", launch.run_id);
        }
        let id = cli::parse_sbatch_parsable(&out).map_err(anyhow::Error::msg)?;
        self.jobs.push(Job::new(&launch.run_id, id));
        Ok(Started {
            pid: None,
            job: Some(id.to_string()),
            device: format!("Slurm job {id}"),
        })
    }

    fn reap(&mut self) -> Result<Vec<Ended>> {
        self.poll(false)?;
        let mut ended = Vec::new();
        let mut stuck = Vec::new();
        let mut keep = Vec::new();
        for job in self.jobs.drain(..) {
            let end = |cause: String, cancelled: bool| Ended {
                run_id: job.run_id.clone(),
                cause,
                busy: false,
                cancelled,
            };
            let Some(row) = &job.last else {
                if job.seen {
                    ended.push(end(
                        format!(
                            "Slurm no longer knows job {} (it ended long ago, or was lost)",
                            job.id
                        ),
                        false,
                    ));
                } else if job.submitted.elapsed() > UNLISTED_GRACE {
                    ended.push(end(format!("Slurm never listed job {}", job.id), false));
                } else {
                    // Submitted since the last poll: give squeue time to list it.
                    keep.push(job);
                }
                continue;
            };
            match row.outcome() {
                Outcome::Pending => match job_state::STUCK_REASONS
                    .iter()
                    .find(|r| row.reason.as_deref() == Some(**r))
                {
                    Some(reason) => {
                        stuck.push(job.id);
                        ended.push(end(
                            format!("Slurm job {} cannot start ({reason})", job.id),
                            false,
                        ));
                    }
                    None => keep.push(job),
                },
                Outcome::Running | Outcome::Requeued | Outcome::Unknown(_) => keep.push(job),
                Outcome::Completed => ended.push(end(format!("Slurm job {} completed", job.id), false)),
                Outcome::Cancelled => ended.push(end(format!("Slurm job {} was cancelled", job.id), true)),
                Outcome::Failed(how) => ended.push(end(Self::failure(job.id, &how), false)),
            }
        }
        self.jobs = keep;
        self.cancel(&stuck, &[]);
        Ok(ended)
    }

    fn whereabouts(&self, run_id: &str) -> Option<String> {
        let job = self.jobs.iter().find(|j| j.run_id == run_id)?;
        Some(match &job.last {
            None => format!("Slurm job {} (submitted)", job.id),
            Some(row) => match row.outcome() {
                Outcome::Pending | Outcome::Requeued => format!(
                    "Slurm job {} queued ({})",
                    job.id,
                    row.reason.as_deref().unwrap_or("waiting")
                ),
                _ => format!(
                    "Slurm job {} on {}",
                    job.id,
                    row.node.as_deref().unwrap_or("a node")
                ),
            },
        })
    }

    fn interrupt_all(&mut self) {
        let _ = self.poll(true);
        let (running, pending): (Vec<&Job>, Vec<&Job>) = self
            .jobs
            .iter()
            .partition(|j| j.last.as_ref().is_some_and(|r| r.outcome() == Outcome::Running));
        let running: Vec<u64> = running.iter().map(|j| j.id).collect();
        let pending: Vec<u64> = pending.iter().map(|j| j.id).collect();
        // Running workers checkpoint on SIGINT (sent to the batch shell, which is the worker);
        // jobs still waiting have nothing to save.
        self.cancel(&running, &["--signal=INT", "--batch"]);
        self.cancel(&pending, &[]);
    }

    fn reattach(&mut self, runs: &[(String, String)]) -> Result<Vec<String>> {
        for (run_id, job) in runs {
            if let Ok(id) = job.parse::<u64>() {
                self.jobs.push(Job::new(run_id, id));
            }
        }
        self.poll(true)?;
        self.jobs.retain(|j| {
            j.last.as_ref().is_some_and(|r| {
                matches!(
                    r.outcome(),
                    Outcome::Pending | Outcome::Running | Outcome::Requeued
                )
            })
        });
        Ok(self.jobs.iter().map(|j| j.run_id.clone()).collect())
    }
}
