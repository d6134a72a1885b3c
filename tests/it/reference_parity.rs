//! pixelx's model against an independent PyTorch implementation of the reference layout
//! (`python/reference_pixelcnn.py`): an export must load there and give the same logits.
//! Belongs here: agreement with the PyTorch reference implementation.

use std::collections::BTreeMap;

use crate::support;
use pixelx::model::{ModelSpec, PixelCnn};
use pixelx::train::checkpoint;
use pixelx::weights;
use tch::{nn, Device, Kind, Tensor};

fn check(spec: ModelSpec, size: i64) {
    let dir = tempfile::tempdir().unwrap();
    tch::manual_seed(11);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = PixelCnn::new(&vs.root(), spec, 11);
    // Move biases and weights away from their initial values so every tensor matters.
    tch::no_grad(|| {
        for (_, mut t) in vs.variables() {
            if t.requires_grad() {
                let _ = t.g_add_(&(t.randn_like() * 0.1));
            }
        }
    });
    let levels = Tensor::randint(
        spec.levels,
        [4, spec.channels, size, size + 1],
        (Kind::Int64, Device::Cpu),
    );
    let x = levels.to_kind(Kind::Float) / (spec.levels - 1) as f64;
    let labels = Tensor::from_slice(&[0i64, 3, 9, 5]);
    let logits = tch::no_grad(|| model.forward(&x, &labels));

    let config = pixelx::config::RunConfig::default();
    let model_path = dir.path().join("model.safetensors");
    weights::save(
        &model_path,
        &weights::model_tensors(&vs),
        checkpoint::metadata(&config, &spec).unwrap(),
    )
    .unwrap();
    let batch_path = dir.path().join("batch.safetensors");
    let batch = BTreeMap::from([
        ("x".to_owned(), x),
        ("labels".to_owned(), labels.to_kind(Kind::Float)),
        ("logits".to_owned(), logits),
    ]);
    weights::save(&batch_path, &batch, Default::default()).unwrap();

    let out = std::process::Command::new(support::venv_python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/python/reference_pixelcnn.py"
        ))
        .args([
            "parity",
            model_path.to_str().unwrap(),
            batch_path.to_str().unwrap(),
        ])
        .output()
        .expect("the project's .venv python (run `just setup`)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{spec:?}: reference logits differ: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(report["max_abs_diff"].as_f64().unwrap() <= 1e-4);
}

#[test]
fn grayscale_export_matches_the_pytorch_reference() {
    check(
        ModelSpec {
            channels: 1,
            levels: 4,
            hidden_fmaps: 8,
            out_hidden_fmaps: 6,
            hidden_layers: 2,
            causal_ksize: 5,
            hidden_ksize: 3,
            classes: 10,
        },
        9,
    );
}

#[test]
fn rgb_export_matches_the_pytorch_reference() {
    check(
        ModelSpec {
            channels: 3,
            levels: 3,
            hidden_fmaps: 9,
            out_hidden_fmaps: 6,
            hidden_layers: 3,
            causal_ksize: 7,
            hidden_ksize: 5,
            classes: 10,
        },
        8,
    );
}

#[test]
fn the_original_default_rgb_model_matches_the_pytorch_reference() {
    check(ModelSpec::original(3), 6);
}
