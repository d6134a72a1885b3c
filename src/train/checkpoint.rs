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

/// Writes a checkpoint atomically, then its checksum sidecar. Returns the checksum.
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
    weights::save(path, tensors, meta)?;
    let sum = weights::file_sha256(path)?;
    weights::write_atomically(&sidecar(path), sum.as_bytes())?;
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
