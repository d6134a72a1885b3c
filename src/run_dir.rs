//! A run's folder: `runs/<id>/` with its resolved config, journal, logs, checkpoints and samples.
//!
//! A run's folder is always found as `<runs dir>/<id>`, whatever path the run was created
//! under, so a runs folder can be moved or copied whole.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::config::RunConfig;

/// A fresh id for a one-off run: its config hashed together with the current time, 12 hex digits.
pub fn adhoc_run_id(config: &RunConfig) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(config).unwrap_or_default());
    h.update(chrono::Utc::now().to_rfc3339().as_bytes());
    h.update(std::process::id().to_le_bytes());
    hex::encode(h.finalize())[..12].to_owned()
}

/// Whether `s` can be a run id or an abbreviation of one: 1 to 64 hexadecimal digits, so that it
/// can never name a path outside the runs folder nor break out of a URL segment. The one rule
/// for ids a user types and ids read from a registry (pixelx makes 12 hex digits).
pub fn is_run_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// [`is_run_id`], as an error that says what a run id looks like.
pub fn check_run_id(s: &str) -> anyhow::Result<&str> {
    if !is_run_id(s) {
        anyhow::bail!(
            "`{s}` is not a run id (run ids are hexadecimal, e.g. `980b2f36e396` or a prefix of one)"
        );
    }
    Ok(s)
}

/// Where a checkpoint leaves training: (epochs done, steps into the next epoch).
pub type Position = (u32, i64);

/// The position a checkpoint file name encodes: `epoch-0003.safetensors` is (3, 0),
/// `epoch-0003-step-000120.safetensors` is (3, 120).
pub fn checkpoint_position(name: &str) -> Option<Position> {
    let stem = name.strip_prefix("epoch-")?.strip_suffix(".safetensors")?;
    match stem.split_once("-step-") {
        Some((epoch, step)) => Some((epoch.parse().ok()?, step.parse().ok()?)),
        None => Some((stem.parse().ok()?, 0)),
    }
}

/// A run folder's `config.toml`: the configuration its worker trains.
pub fn read_config(run: &RunDir) -> Result<RunConfig> {
    let text = std::fs::read_to_string(run.config_path())
        .with_context(|| format!("reading {}", run.config_path().display()))?;
    toml::from_str(&text)
        .with_context(|| format!("{} is not a valid run config", run.config_path().display()))
}

#[derive(Debug, Clone)]
pub struct RunDir {
    pub id: String,
    pub root: PathBuf,
}

impl RunDir {
    pub fn new(runs_dir: &Path, id: &str) -> Self {
        Self {
            id: id.to_owned(),
            root: runs_dir.join(id),
        }
    }

    /// Creates the folder tree and writes the resolved config.
    pub fn create(runs_dir: &Path, id: &str, config: &RunConfig) -> Result<Self> {
        let dir = Self::new(runs_dir, id);
        for sub in [dir.checkpoints_dir(), dir.samples_dir()] {
            crate::fsio::create_dir_all(&sub)?;
        }
        let text = toml::to_string(config).context("serialising the run config")?;
        crate::fsio::write_atomically(&dir.config_path(), text.as_bytes())?;
        Ok(dir)
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    pub fn log_path(&self) -> PathBuf {
        self.root.join("train.log")
    }
    pub fn worker_log_path(&self) -> PathBuf {
        self.root.join("worker.log")
    }
    pub fn slurm_dir(&self) -> PathBuf {
        self.root.join("slurm")
    }
    pub fn checkpoints_dir(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
    pub fn samples_dir(&self) -> PathBuf {
        self.root.join("samples")
    }
    pub fn epoch_checkpoint(&self, epoch: u32) -> PathBuf {
        self.checkpoints_dir()
            .join(format!("epoch-{epoch:04}.safetensors"))
    }
    /// The checkpoint written on a stop request after `epochs_done` epochs and `step` batches.
    pub fn step_checkpoint(&self, epochs_done: u32, step: i64) -> PathBuf {
        self.checkpoints_dir()
            .join(format!("epoch-{epochs_done:04}-step-{step:06}.safetensors"))
    }
    pub fn best_checkpoint(&self) -> PathBuf {
        self.checkpoints_dir().join("best.safetensors")
    }
    pub fn epoch_samples(&self, epoch: u32) -> PathBuf {
        self.samples_dir().join(format!("epoch-{epoch:04}.png"))
    }

    /// Epoch and mid-epoch checkpoints present on disk with their positions, the furthest
    /// training position first (by position, not by name: a mid-epoch checkpoint is newer than
    /// the epoch checkpoint it continues although its name sorts before it).
    pub fn epoch_checkpoints(&self) -> Vec<(Position, PathBuf)> {
        let mut found: Vec<(Position, PathBuf)> = std::fs::read_dir(self.checkpoints_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                checkpoint_position(name.to_str()?).map(|p| (p, e.path()))
            })
            .collect();
        found.sort_by_key(|f| std::cmp::Reverse(f.0));
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mid_epoch_checkpoint_comes_before_the_epoch_it_continues() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path(), "r");
        std::fs::create_dir_all(run.checkpoints_dir()).unwrap();
        for name in [
            "epoch-0001.safetensors",
            "epoch-0002.safetensors",
            "epoch-0002-step-000013.safetensors",
            "best.safetensors",
        ] {
            std::fs::write(run.checkpoints_dir().join(name), b"x").unwrap();
        }
        let order: Vec<Position> = run.epoch_checkpoints().into_iter().map(|(p, _)| p).collect();
        assert_eq!(order, [(2, 13), (2, 0), (1, 0)]);
    }

    #[test]
    fn run_ids_are_hexadecimal() {
        assert!(check_run_id("980b2f").is_ok());
        for bad in ["", "../x", "a/b", "..", "xyz"] {
            assert!(check_run_id(bad).is_err(), "{bad}");
        }
    }
}
