//! Checkpoints: model, optimiser moments and training position in one safetensors file, with a
//! SHA-256 sidecar so that a damaged file is noticed and an older one used instead.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::TrainState;
use crate::config::RunConfig;
use crate::model::ModelSpec;
use crate::weights::{self, NamedTensors, WeightFile};

pub const FORMAT: &str = "pixelx-checkpoint-1";

/// The `.sha256` file that holds a checkpoint's checksum.
pub fn sidecar(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".sha256");
    path.with_file_name(name)
}

/// Metadata every pixelx weight file carries: enough to rebuild the model without guessing.
pub fn metadata(config: &RunConfig, spec: &ModelSpec) -> Result<HashMap<String, String>> {
    Ok(HashMap::from([
        ("pixelx.config".to_owned(), toml::to_string(config)?),
        ("pixelx.spec".to_owned(), serde_json::to_string(spec)?),
    ]))
}

/// Writes a checkpoint atomically, then its checksum sidecar. Returns the checksum, computed from
/// the bytes written.
pub fn save(
    path: &Path,
    tensors: &NamedTensors,
    config: &RunConfig,
    spec: &ModelSpec,
    state: &TrainState,
) -> Result<String> {
    let mut meta = metadata(config, spec)?;
    meta.insert("pixelx.format".into(), FORMAT.into());
    meta.insert("pixelx.state".into(), serde_json::to_string(state)?);
    let sum = weights::save(path, tensors, meta)?;
    crate::fsio::write_atomically(&sidecar(path), sum.as_bytes())?;
    Ok(sum)
}

/// A checkpoint read back: its tensors and what its metadata says.
pub struct Checkpoint {
    pub file: WeightFile,
    pub config: RunConfig,
    pub spec: ModelSpec,
    pub state: Option<TrainState>,
}

/// Reads a checkpoint or export, checking the sidecar checksum when there is one.
pub fn load(path: &Path) -> Result<Checkpoint> {
    if let Ok(expected) = std::fs::read_to_string(sidecar(path)) {
        let actual = weights::file_sha256(path)?;
        if actual != expected.trim() {
            bail!(
                "{} is corrupt: its SHA-256 is {actual}, the checkpoint recorded {}",
                path.display(),
                expected.trim()
            );
        }
    }
    parse(path)
}

/// Reads a checkpoint or export without checking its sidecar.
fn parse(path: &Path) -> Result<Checkpoint> {
    let file = weights::load(path)?;
    let meta = |key: &str| {
        file.metadata.get(key).with_context(|| {
            format!(
                "{} has no `{key}` metadata: not a pixelx file (use `pixelx import` for other weights)",
                path.display()
            )
        })
    };
    let config: RunConfig = toml::from_str(meta("pixelx.config")?)
        .with_context(|| format!("{}: bad config metadata", path.display()))?;
    let spec: ModelSpec = serde_json::from_str(meta("pixelx.spec")?)
        .with_context(|| format!("{}: bad spec metadata", path.display()))?;
    let state = match file.metadata.get("pixelx.state") {
        Some(s) => {
            Some(serde_json::from_str(s).with_context(|| format!("{}: bad state metadata", path.display()))?)
        }
        None => None,
    };
    Ok(Checkpoint {
        file,
        config,
        spec,
        state,
    })
}

/// The newest checkpoint of a run that passes its checksum, loaded; None when there is none.
///
/// A checkpoint is checked against its `.sha256` sidecar or, when the sidecar is gone, against the
/// checksum the run's journal recorded when it was written. One that fails is skipped with a
/// warning. One with no checksum anywhere is used only when no older checkpoint can be verified.
pub fn newest_usable(run: &crate::run_dir::RunDir) -> Result<Option<(PathBuf, Checkpoint)>> {
    let recorded = crate::journal::recorded_checksums(&run.root);
    let mut unverified = Vec::new();
    for (_, path) in run.epoch_checkpoints() {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let expected = std::fs::read_to_string(sidecar(&path))
            .ok()
            .map(|s| s.trim().to_owned())
            .or_else(|| recorded.get(&name).cloned());
        let Some(expected) = expected else {
            tracing::warn!(
                "{} has no checksum (its .sha256 file is gone and the journal has none); \
                 preferring an older verified checkpoint",
                path.display()
            );
            unverified.push(path);
            continue;
        };
        let actual = weights::file_sha256(&path)?;
        if actual != expected {
            tracing::warn!(
                "skipping damaged checkpoint {}: its SHA-256 checksum is {actual}, {expected} was recorded",
                path.display()
            );
            continue;
        }
        match parse(&path) {
            Ok(ckpt) => return Ok(Some((path, ckpt))),
            Err(e) => tracing::warn!("skipping unreadable checkpoint {}: {e:#}", path.display()),
        }
    }
    for path in unverified {
        match parse(&path) {
            Ok(ckpt) => {
                tracing::warn!("using unverified checkpoint {}", path.display());
                return Ok(Some((path, ckpt)));
            }
            Err(e) => tracing::warn!("skipping unreadable checkpoint {}: {e:#}", path.display()),
        }
    }
    Ok(None)
}

/// Builds the model a checkpoint or export describes and loads its weights.
pub fn load_model(
    path: &Path,
    device: tch::Device,
) -> Result<(tch::nn::VarStore, crate::model::PixelCnn, Checkpoint)> {
    let ckpt = load(path)?;
    let mut vs = tch::nn::VarStore::new(device);
    let model = crate::model::PixelCnn::new(&vs.root(), ckpt.spec, 0);
    weights::load_into(&mut vs, &ckpt.file.tensors, path)?;
    Ok((vs, model, ckpt))
}
