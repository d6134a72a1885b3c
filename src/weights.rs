//! Weight files: safetensors with string metadata, written atomically.
//!
//! Checkpoints and exports share this format. An export holds the model's tensors under the
//! reference names (loadable with PyTorch's `load_state_dict`); a checkpoint adds the optimiser's
//! moments under `optim.*` and the training position in its metadata.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use tch::{nn, Kind, Tensor};

/// Named tensors, kept sorted so files are byte-for-byte reproducible.
pub type NamedTensors = BTreeMap<String, Tensor>;

/// Writes `tensors` and `metadata` to `path` through a temporary file in the same folder, synced
/// and then renamed, so a crash leaves either the old file or the complete new one. Returns the
/// SHA-256 of the bytes written.
pub fn save(path: &Path, tensors: &NamedTensors, metadata: HashMap<String, String>) -> Result<String> {
    let data = to_bytes(tensors, metadata)?;
    crate::fsio::write_atomically(path, &data)?;
    Ok(crate::fsio::sha256_hex(&data))
}

/// The bytes [`save`] writes: the same tensors and metadata always give the same bytes.
pub fn to_bytes(tensors: &NamedTensors, metadata: HashMap<String, String>) -> Result<Vec<u8>> {
    let mut buffers = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t.to_device(tch::Device::Cpu).to_kind(Kind::Float).contiguous();
        let values =
            Vec::<f32>::try_from(t.flatten(0, -1)).with_context(|| format!("reading tensor {name}"))?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        buffers.push((name.clone(), shape, bytes));
    }
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| Ok((name.as_str(), TensorView::new(Dtype::F32, shape.clone(), bytes)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(safetensors::serialize(views, &Some(metadata))?)
}

/// A loaded weight file.
pub struct WeightFile {
    pub tensors: NamedTensors,
    pub metadata: HashMap<String, String>,
}

/// What is wrong with a file the safetensors reader refused, in words (its error's `Display`
/// is the variant's name, e.g. `HeaderTooSmall`).
fn describe(e: &safetensors::SafeTensorError, len: usize) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::HeaderTooSmall if len == 0 => "the file is empty".into(),
        E::HeaderTooSmall | E::InvalidHeaderLength => {
            format!("its {len} bytes are too short for the header it announces (truncated?)")
        }
        E::HeaderTooLarge => {
            "the header length it announces is implausibly large (not a safetensors file?)".into()
        }
        E::InvalidHeader | E::InvalidHeaderStart | E::InvalidHeaderDeserialization | E::JsonError(_) => {
            "its header is not the JSON a safetensors file starts with".into()
        }
        E::TensorNotFound(name) => format!("tensor {name} is missing"),
        E::InvalidOffset(name) => format!("the data of tensor {name} lies outside the file (truncated?)"),
        E::MetadataIncompleteBuffer => {
            "the tensors do not cover the file's data (truncated or padded?)".into()
        }
        E::TensorInvalidInfo | E::InvalidTensorView(..) | E::ValidationOverflow => {
            "a tensor's shape, type and size disagree".into()
        }
        E::IoError(io) => io.to_string(),
    }
}

/// Reads a safetensors file; any float dtype is converted to f32.
pub fn load(path: &Path) -> Result<WeightFile> {
    // A FIFO or device would block or never end: only regular files are weight files.
    crate::fsio::check_regular_file(path, "weight file", None)?;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let unreadable = |e: safetensors::SafeTensorError| {
        anyhow::anyhow!(
            "{} is not a readable safetensors file: {}",
            path.display(),
            describe(&e, bytes.len())
        )
    };
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(unreadable)?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(unreadable)?;
    let mut tensors = NamedTensors::new();
    for (name, view) in st.tensors() {
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let kind = match view.dtype() {
            Dtype::F32 => Kind::Float,
            Dtype::F64 => Kind::Double,
            Dtype::F16 => Kind::Half,
            Dtype::BF16 => Kind::BFloat16,
            other => bail!(
                "{}: tensor {name} has unsupported dtype {other:?}",
                path.display()
            ),
        };
        let t = Tensor::f_from_data_size(view.data(), &shape, kind)?.to_kind(Kind::Float);
        tensors.insert(name, t);
    }
    Ok(WeightFile { tensors, metadata })
}

/// SHA-256 of a file, hex-encoded.
pub fn file_sha256(path: &Path) -> Result<String> {
    crate::fsio::check_regular_file(path, "weight file", None)?;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(crate::fsio::sha256_hex(&bytes))
}

/// Refuses weights holding NaN or infinite values (a model that cannot be evaluated or trained).
pub fn check_finite(tensors: &NamedTensors, source: &Path) -> Result<()> {
    for (name, t) in tensors {
        let finite = t.isfinite().all().int64_value(&[]) != 0;
        if !finite {
            bail!(
                "{}: tensor {name} holds NaN or infinite values; these weights cannot be used",
                source.display()
            );
        }
    }
    Ok(())
}

/// Every variable of a var store (weights, biases, embeddings and mask buffers), by name.
pub fn model_tensors(vs: &nn::VarStore) -> NamedTensors {
    vs.variables().into_iter().collect()
}

/// Copies `tensors` into the variables of `vs`. Every variable must be present with its exact
/// shape; a mismatch means the file holds a different architecture.
pub fn load_into(vs: &mut nn::VarStore, tensors: &NamedTensors, source: &Path) -> Result<()> {
    let vars = vs.variables();
    let mut problems = Vec::new();
    for (name, var) in &vars {
        match tensors.get(name) {
            None => problems.push(format!("missing {name}")),
            Some(t) if t.size() != var.size() => problems.push(format!(
                "{name} has shape {:?}, the model needs {:?}",
                t.size(),
                var.size()
            )),
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        problems.truncate(5);
        bail!(
            "{} does not match the model's architecture: {}",
            source.display(),
            problems.join("; ")
        );
    }
    tch::no_grad(|| {
        for (name, mut var) in vars {
            var.copy_(&tensors[&name].to_device(var.device()));
        }
    });
    Ok(())
}
