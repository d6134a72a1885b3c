//! The cached sampler against full forward passes: same logits at every step, same images.
//! Belongs here: the samplers, in process.

use pixelx::model::{ModelSpec, PixelCnn};
use pixelx::sample::{cached_logits, host_logits, sample, sample_host, Draws, Sampler};
use tch::{nn, Device, Kind, Tensor};

fn spec(channels: i64, levels: i64, fmaps: i64, layers: i64, k1: i64, k2: i64) -> ModelSpec {
    ModelSpec {
        channels,
        levels,
        hidden_fmaps: fmaps,
        out_hidden_fmaps: 6,
        hidden_layers: layers,
        causal_ksize: k1,
        hidden_ksize: k2,
        classes: 10,
    }
}

const MODELS: [(i64, i64, i64, i64, i64, i64); 5] = [
    (1, 2, 8, 2, 7, 5),
    (1, 4, 6, 3, 3, 3),
    (3, 3, 9, 2, 5, 7),
    (3, 2, 6, 0, 3, 3),
    (1, 5, 4, 4, 5, 3),
];

#[test]
fn cached_logits_equal_the_full_forward_pass_at_every_step() {
    for (seed, &(c, l, f, layers, k1, k2)) in MODELS.iter().enumerate() {
        let vs = nn::VarStore::new(Device::Cpu);
        let model = PixelCnn::new(&vs.root(), spec(c, l, f, layers, k1, k2), seed as u64);
        let given = Tensor::randint(l, [3, c, 6, 7], (Kind::Int64, Device::Cpu));
        let labels = Tensor::from_slice(&[2i64, 0, 9]);
        let full = tch::no_grad(|| model.forward(&(given.to_kind(Kind::Float) / (l - 1) as f64), &labels));
        let cached = cached_logits(&model, &labels, &given);
        let diff = (full - cached).abs().max().double_value(&[]);
        assert!(diff <= 1e-4, "model {:?}: max difference {diff}", MODELS[seed]);
    }
}

#[test]
fn both_samplers_draw_the_same_images_from_the_same_seed() {
    for (seed, &(c, l, f, layers, k1, k2)) in MODELS.iter().enumerate() {
        let vs = nn::VarStore::new(Device::Cpu);
        let model = PixelCnn::new(&vs.root(), spec(c, l, f, layers, k1, k2), 100 + seed as u64);
        let labels = Tensor::from_slice(&[1i64, 5, 8, 3]);
        let naive = sample(&model, &labels, (5, 6), 1.0, Sampler::Naive, 42, 2);
        let cached = sample(&model, &labels, (5, 6), 1.0, Sampler::Cached, 42, 2);
        assert_eq!(naive.size(), vec![4, c, 5, 6]);
        assert!(
            naive.equal(&cached),
            "model {:?}: samplers disagree",
            MODELS[seed]
        );
        let other = sample(&model, &labels, (5, 6), 1.0, Sampler::Cached, 43, 2);
        assert!(!other.equal(&cached), "another seed gives other images");
        assert!(cached.max().int64_value(&[]) < l && cached.min().int64_value(&[]) >= 0);
    }
}

#[test]
fn host_logits_equal_the_full_forward_pass_at_every_step_on_any_number_of_threads() {
    for (seed, &(c, l, f, layers, k1, k2)) in MODELS.iter().enumerate() {
        let vs = nn::VarStore::new(Device::Cpu);
        let model = PixelCnn::new(&vs.root(), spec(c, l, f, layers, k1, k2), 200 + seed as u64);
        let given = Tensor::randint(l, [5, c, 6, 7], (Kind::Int64, Device::Cpu));
        let labels = Tensor::from_slice(&[2i64, 0, 9, 4, 4]);
        let full = tch::no_grad(|| model.forward(&(given.to_kind(Kind::Float) / (l - 1) as f64), &labels));
        let one = host_logits(&model, &labels, &given, 1);
        let diff = (&full - &one).abs().max().double_value(&[]);
        assert!(diff <= 1e-4, "model {:?}: max difference {diff}", MODELS[seed]);
        for threads in [2, 3, 8] {
            let split = host_logits(&model, &labels, &given, threads);
            assert!(
                split.equal(&one),
                "model {:?}: {threads} threads change the logits",
                MODELS[seed]
            );
        }
    }
}

#[test]
fn the_host_sampler_draws_the_naive_images_on_any_number_of_threads() {
    let (c, l, f, layers, k1, k2) = MODELS[2];
    let vs = nn::VarStore::new(Device::Cpu);
    let model = PixelCnn::new(&vs.root(), spec(c, l, f, layers, k1, k2), 7);
    let labels = Tensor::from_slice(&[1i64, 5, 8, 3, 0]);
    let naive = sample(&model, &labels, (4, 5), 0.8, Sampler::Naive, 9, 2);
    for threads in [1, 2, 3] {
        let host = sample_host(&model, &labels, (4, 5), &mut Draws::new(9, 0.8), threads);
        assert!(
            host.equal(&naive),
            "{threads} threads: other images than the naive sampler's"
        );
    }
}
