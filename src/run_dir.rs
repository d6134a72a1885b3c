//! A run's folder: `runs/<id>/` with its resolved config, log, metrics, checkpoints and samples.

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
            std::fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
        }
        let text = toml::to_string(config).context("serialising the run config")?;
        crate::weights::write_atomically(&dir.config_path(), text.as_bytes())?;
        Ok(dir)
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    pub fn log_path(&self) -> PathBuf {
        self.root.join("train.log")
    }
    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
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
    pub fn best_checkpoint(&self) -> PathBuf {
        self.checkpoints_dir().join("best.safetensors")
    }
    pub fn epoch_samples(&self, epoch: u32) -> PathBuf {
        self.samples_dir().join(format!("epoch-{epoch:04}.png"))
    }

    /// Epoch checkpoints present on disk, newest first.
    pub fn epoch_checkpoints(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(self.checkpoints_dir())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("epoch-") && n.ends_with(".safetensors"))
            })
            .collect();
        found.sort();
        found.reverse();
        found
    }
}
