//! `just bench`: pixelx's speed as ratios against baselines measured in the same invocation.
//!
//! - training: images/s of pixelx against the PyTorch reference (`python/reference_pixelcnn.py`)
//!   on the same architecture, batch and thread count;
//! - sampling: the cached sampler against the naive one (a full forward pass per sub-pixel).
//!
//! `cargo bench --bench speed -- training` (or `sampling`) runs one part.

use std::process::Command;
use std::time::Instant;

use pixelx::metrics::batch_loss;
use pixelx::model::{ModelSpec, PixelCnn};
use pixelx::sample::{sample, Sampler};
use pixelx::train::Adam;
use tch::{nn, Device, Kind, Tensor};

const THREADS: i32 = 2;

fn original_defaults(channels: i64) -> ModelSpec {
    ModelSpec {
        channels,
        levels: 2,
        hidden_fmaps: 30,
        out_hidden_fmaps: 10,
        hidden_layers: 6,
        causal_ksize: 7,
        hidden_ksize: 7,
        classes: 10,
    }
}

/// pixelx training images/s: forward, loss, backward, clipping and Adam, as the trainer does.
fn pixelx_train_speed(spec: ModelSpec, batch: i64, steps: usize) -> f64 {
    let vs = nn::VarStore::new(Device::Cpu);
    let model = PixelCnn::new(&vs.root(), spec, 0);
    let mut adam = Adam::new(&vs, 1e-4);
    let levels = Tensor::randint(
        spec.levels,
        [batch, spec.channels, 28, 28],
        (Kind::Int64, Device::Cpu),
    );
    let x = levels.to_kind(Kind::Float) / (spec.levels - 1) as f64;
    let labels = Tensor::randint(10, [batch], (Kind::Int64, Device::Cpu));
    let mut step = || {
        let loss = batch_loss(&model.forward(&x, &labels), &levels);
        adam.zero_grad();
        loss.backward();
        adam.clip_grad_norm(1.0);
        adam.step(1e-4);
    };
    for _ in 0..2 {
        step();
    }
    let start = Instant::now();
    for _ in 0..steps {
        step();
    }
    (steps as i64 * batch) as f64 / start.elapsed().as_secs_f64()
}

fn pytorch_train_speed(spec: ModelSpec, batch: i64, steps: usize) -> f64 {
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/reference_pixelcnn.py");
    let out = Command::new(python)
        .args([script, "train-speed"])
        .args([
            "--channels",
            &spec.channels.to_string(),
            "--hidden-fmaps",
            &spec.hidden_fmaps.to_string(),
        ])
        .args(["--out-hidden-fmaps", &spec.out_hidden_fmaps.to_string()])
        .args(["--batch-size", &batch.to_string(), "--steps", &steps.to_string()])
        .args(["--threads", &THREADS.to_string()])
        .output()
        .expect("the project's .venv python (run `just setup`)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json from the reference script");
    v["images_per_sec"].as_f64().unwrap()
}

fn training() {
    let spec = original_defaults(3);
    let (batch, steps) = (32, 12);
    println!("training: C=3 F=30 O=10 6 blocks k=7 L=2, batch {batch}, {THREADS} threads, {steps} steps");
    let baseline = pytorch_train_speed(spec, batch, steps);
    let ours = pixelx_train_speed(spec, batch, steps);
    println!("  PyTorch reference  {baseline:8.1} images/s  (baseline)");
    println!("  pixelx             {ours:8.1} images/s");
    println!("  ratio              {:8.2}x  (target >= 1.2x)", ours / baseline);
}

fn sampling() {
    let spec = original_defaults(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = PixelCnn::new(&vs.root(), spec, 0);
    let labels = Tensor::arange(64, (Kind::Int64, Device::Cpu)).remainder(10);
    println!("sampling: 64 MNIST 28x28 images, C=1 F=30 6 blocks k=7 L=2, {THREADS} threads");
    let start = Instant::now();
    let cached = sample(&model, &labels, 28, 28, 1.0, Sampler::Cached, 1);
    let t_cached = start.elapsed().as_secs_f64();
    println!("  cached             {t_cached:8.2} s");
    // The naive sampler is 784 identical full forward passes over the batch (about 1 s each here,
    // so 15+ minutes in all): time a few of them and multiply. The test suite checks on small
    // models that both samplers give the same images.
    let x = cached.to_kind(Kind::Float);
    let passes = 6;
    let start = Instant::now();
    for _ in 0..passes {
        let _ = tch::no_grad(|| model.forward(&x, &labels));
    }
    let per_pass = start.elapsed().as_secs_f64() / passes as f64;
    let t_naive = per_pass * (28 * 28) as f64;
    println!(
        "  naive              {t_naive:8.2} s  (baseline: 784 passes x {per_pass:.3} s, {passes} timed)"
    );
    println!(
        "  speed-up           {:8.1}x  (target >= 50x)",
        t_naive / t_cached
    );
}

fn main() {
    tch::set_num_threads(THREADS);
    let wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let run = |name: &str| wanted.is_empty() || wanted.iter().any(|w| name.contains(w.as_str()));
    if run("training") {
        training();
    }
    if run("sampling") {
        sampling();
    }
}
