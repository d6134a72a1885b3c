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
/// Metadata key naming the run a checkpoint was written for: how a checkpoint proves whose it is
/// when run folders' files are moved or swapped.
pub const RUN_KEY: &str = "pixelx.run";

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
    run_id: &str,
    tensors: &NamedTensors,
    config: &RunConfig,
    spec: &ModelSpec,
    state: &TrainState,
) -> Result<String> {
    let mut meta = metadata(config, spec)?;
    meta.insert("pixelx.format".into(), FORMAT.into());
    meta.insert(RUN_KEY.into(), run_id.into());
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

impl Checkpoint {
    /// The run the checkpoint says it was written for (files from before pixelx recorded it
    /// have none).
    pub fn run_id(&self) -> Option<&str> {
        self.file.metadata.get(RUN_KEY).map(String::as_str)
    }
}

/// The checksum in a checkpoint's `.sha256` sidecar; None when there is no sidecar. A sidecar
/// that is not a regular file (a FIFO would block the reader) is an error.
fn read_sidecar(path: &Path) -> Result<Option<String>> {
    let side = sidecar(path);
    match std::fs::symlink_metadata(&side) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    Ok(Some(
        crate::fsio::read_text_file(&side, "checksum file")?
            .trim()
            .to_owned(),
    ))
}

/// Reads a checkpoint or export, checking the sidecar checksum when there is one.
pub fn load(path: &Path) -> Result<Checkpoint> {
    crate::fsio::check_regular_file(path, "weight file", None)?;
    if let Some(expected) = read_sidecar(path)? {
        let actual = weights::file_sha256(path)?;
        if actual != expected {
            bail!(
                "{} is corrupt: its SHA-256 is {actual}, the checkpoint recorded {expected}",
                path.display(),
            );
        }
    }
    parse(path)
}

/// A checkpoint that is not the run's own (its run folder's files were moved or swapped).
#[derive(Debug, thiserror::Error)]
#[error("{path} is not run {run}'s checkpoint: {why}")]
pub struct NotTheRuns {
    pub path: String,
    pub run: String,
    pub why: String,
}

/// Checks that a checkpoint found in run `run_id`'s folder was written by that run: by the run
/// id in its metadata or, for files written before pixelx recorded it, by its embedded config
/// against the run's `config`.
pub fn check_owner(path: &Path, ckpt: &Checkpoint, run_id: &str, config: &RunConfig) -> Result<()> {
    let refuse = |why: String| NotTheRuns {
        path: path.display().to_string(),
        run: run_id.to_owned(),
        why,
    };
    match ckpt.run_id() {
        Some(owner) if owner != run_id => Err(refuse(format!(
            "it was written by run {owner} (its metadata names it); was a checkpoints folder moved \
             or swapped? Give the file with --checkpoint to use it anyway"
        ))
        .into()),
        Some(_) => Ok(()),
        None => {
            let differing = config_differences(&ckpt.config, config);
            if differing.is_empty() {
                Ok(())
            } else {
                Err(refuse(format!(
                    "its embedded config differs from the run's in {}; it belongs to another run",
                    differing.join(", ")
                ))
                .into())
            }
        }
    }
}

/// The settings two configs disagree on, by name.
fn config_differences(a: &RunConfig, b: &RunConfig) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(a), serde_json::to_value(b))
    else {
        return Vec::new();
    };
    a.iter()
        .filter(|(k, v)| b.get(k.as_str()) != Some(v))
        .map(|(k, _)| k.clone())
        .collect()
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
        let side = read_sidecar(&path).unwrap_or_else(|e| {
            tracing::warn!("ignoring the checksum file of {}: {e:#}", path.display());
            None
        });
        let expected = side.or_else(|| recorded.get(&name).cloned());
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
