//! Weight initialisation from a seeded generator of pixelx's own.
//!
//! torch's global generator is shared by every thread of a process, so two models initialised at
//! once (tests, or several runs in one process) would interleave their draws. Drawing from a
//! per-model ChaCha stream keeps "same seed, same weights" true regardless of what else runs.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use tch::Tensor;

pub struct Initialiser {
    rng: ChaCha8Rng,
}

impl Initialiser {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Uniform in `[-bound, bound)`, PyTorch's default for convolutions (`bound = 1/sqrt(fan_in)`).
    pub fn uniform(&mut self, shape: &[i64], bound: f64) -> Tensor {
        let n = shape.iter().product::<i64>() as usize;
        let v: Vec<f32> = (0..n).map(|_| self.rng.gen_range(-bound..bound) as f32).collect();
        Tensor::from_slice(&v).reshape(shape)
    }

    /// Standard normal, PyTorch's default for embeddings.
    pub fn normal(&mut self, shape: &[i64]) -> Tensor {
        let n = shape.iter().product::<i64>() as usize;
        let v: Vec<f32> = (0..n)
            .map(|_| self.rng.sample::<f32, _>(StandardNormal))
            .collect();
        Tensor::from_slice(&v).reshape(shape)
    }
}
