//! Reading weights that pixelx did not write: reference-layout safetensors, e.g. a state dict of
//! the PyTorch original saved with `safetensors.torch.save_file`.

use std::path::Path;

use anyhow::{Context, Result};
use tch::nn;

use crate::config::RunConfig;
use crate::data::DatasetKind;
use crate::model::{ModelSpec, PixelCnn};
use crate::run_dir::{adhoc_run_id, RunDir};
use crate::train::checkpoint;
use crate::weights::{self, NamedTensors};

/// Reads the architecture off the tensor shapes of the reference layout.
pub fn infer_spec(t: &NamedTensors, source: &Path) -> Result<ModelSpec> {
    let dim = |name: &str, i: usize| -> Result<i64> {
        t.get(name)
            .map(|x| x.size()[i])
            .with_context(|| format!("{} lacks {name}: not in the reference layout", source.display()))
    };
    let hidden_layers = (0..)
        .take_while(|i| t.contains_key(&format!("hidden_conv.{i}.v_conv.weight")))
        .count() as i64;
    let channels = dim("causal_conv.v_conv.weight", 1)?;
    let causal_ksize = dim("causal_conv.v_conv.weight", 3)?;
    let hidden_ksize = if hidden_layers > 0 {
        dim("hidden_conv.0.v_conv.weight", 3)?
    } else {
        causal_ksize
    };
    Ok(ModelSpec {
        channels,
        levels: dim("out_conv.weight", 0)? / channels,
        hidden_fmaps: dim("causal_conv.h_fc.weight", 0)?,
        out_hidden_fmaps: dim("out_hidden_conv.weight", 0)?,
        hidden_layers,
        causal_ksize,
        hidden_ksize,
        classes: dim("label_embedding.weight", 0)?,
    })
}

/// Imports a reference-layout file into a new run folder and returns it. Weights are multiplied by
/// the file's own masks (where it has them), and pixelx's masks are used from then on.
/// `dataset` (when given) overrides what the file's metadata says, with a warning if they differ.
pub fn import_reference(file: &Path, dataset: Option<DatasetKind>, runs_dir: &Path) -> Result<RunDir> {
    let wf = weights::load(file)?;
    weights::check_finite(&wf.tensors, file)?;
    let spec = infer_spec(&wf.tensors, file)?;
    let mut config: RunConfig = match wf.metadata.get("pixelx.config") {
        Some(text) => {
            toml::from_str(text).with_context(|| format!("{}: bad pixelx.config metadata", file.display()))?
        }
        None => RunConfig::default(),
    };
    if let Some(given) = dataset {
        if given != config.dataset && wf.metadata.contains_key("pixelx.config") {
            tracing::warn!(
                "{} says it was trained on {}; importing it as {given}, as --dataset asks",
                file.display(),
                config.dataset
            );
        }
        config.dataset = given;
    }
    // 0 ("the dataset's own") as pixelx's runs record it, so `--where data_channels=…` and
    // `[[exclude]]` treat an imported model like a trained one.
    config.data_channels = if spec.channels == config.dataset.channels() {
        0
    } else {
        spec.channels
    };
    config.color_levels = spec.levels;
    config.hidden_fmaps = spec.hidden_fmaps;
    config.out_hidden_fmaps = spec.out_hidden_fmaps;
    config.hidden_layers = spec.hidden_layers;
    config.causal_ksize = spec.causal_ksize;
    config.hidden_ksize = spec.hidden_ksize;
    config
        .validate()
        .with_context(|| format!("{} describes a model pixelx cannot build", file.display()))?;

    let mut vs = nn::VarStore::new(tch::Device::Cpu);
    let _model = PixelCnn::new(&vs.root(), spec, 0);
    let mut tensors = NamedTensors::new();
    for (name, ours) in vs.variables() {
        if name.ends_with(".mask") {
            tensors.insert(name, ours);
            continue;
        }
        let Some(theirs) = wf.tensors.get(&name) else {
            continue;
        };
        let mask_name = name.replace(".weight", ".mask");
        let value = match wf.tensors.get(&mask_name).filter(|_| name.ends_with(".weight")) {
            Some(mask) if mask.size() == theirs.size() => theirs * mask,
            _ => theirs.shallow_clone(),
        };
        tensors.insert(name, value);
    }
    weights::load_into(&mut vs, &tensors, file)?;

    let id = adhoc_run_id(&config);
    let run = RunDir::create(runs_dir, &id, &config)?;
    let mut meta = checkpoint::metadata(&config, &spec)?;
    meta.insert("pixelx.imported_from".into(), file.display().to_string());
    weights::save(&run.best_checkpoint(), &weights::model_tensors(&vs), meta)?;
    Ok(run)
}
