//! Generating images from a trained model, and writing them as a PNG grid.
//!
//! Two samplers produce the same images for the same seed: `naive` runs the whole network once
//! per sub-pixel (the original's method); `cached` keeps every layer's activations and computes,
//! per sub-pixel, only the column the new value changes, and per row the vertical stack's new row
//! (Ramachandran et al., 2017, "Fast Generation for Convolutional Autoregressive Models").

mod cached;
mod grid;
mod host;
mod host_draws;

pub use cached::{cached_logits, sample_cached};
pub use grid::write_grid;
pub use host_draws::{host_logits, sample_host};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use crate::model::PixelCnn;

/// How sub-pixels are generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sampler {
    /// Cached activations: per sub-pixel, only what the new value changes (the default).
    Cached,
    /// One full forward pass over the whole image per sub-pixel, as the original does.
    Naive,
}

/// Draws sub-pixel levels by inverse CDF from uniforms of pixelx's own seeded generator, so the
/// same seed gives the same images whatever else the process does and on any device.
pub struct Draws {
    rng: ChaCha8Rng,
    temperature: f64,
}

impl Draws {
    pub fn new(seed: u64, temperature: f64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            temperature,
        }
    }

    /// One level per image from `logits` `[N, L]`: see [`draw_one`]. Computed on the host (the
    /// logits are `N·L` values): a handful of tensor operations per sub-pixel cost more than the
    /// arithmetic.
    pub fn draw(&mut self, logits: &Tensor) -> Vec<i64> {
        let (n, levels) = logits.size2().expect("logits are [N, L]");
        let host = logits
            .to_device(tch::Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous();
        let values = Vec::<f32>::try_from(host.flatten(0, -1)).expect("float logits");
        let temperature = self.temperature as f32;
        values
            .chunks(levels as usize)
            .take(n as usize)
            .map(|row| draw_one(row, self.uniform(), temperature))
            .collect()
    }

    /// The generator's next uniform in [0, 1): what one draw consumes.
    pub fn uniform(&mut self) -> f32 {
        self.rng.gen::<f32>()
    }

    pub fn temperature(&self) -> f32 {
        self.temperature as f32
    }
}

/// The level whose softmax CDF (of `logits / temperature`) first reaches `u`: the number of CDF
/// values below `u`, clamped to the last level.
pub fn draw_one(logits: &[f32], u: f32, temperature: f32) -> i64 {
    let levels = logits.len();
    let max = logits
        .iter()
        .map(|&l| l / temperature)
        .fold(f32::NEG_INFINITY, f32::max);
    // Each level's weight computed once for both the total and the CDF, in a stack buffer for
    // the 2 to 256 levels a model has (no allocation per draw).
    let mut stack = [0f32; 256];
    let mut heap = Vec::new();
    let weights: &mut [f32] = if levels <= stack.len() {
        &mut stack[..levels]
    } else {
        heap.resize(levels, 0.0);
        &mut heap
    };
    for (w, &l) in weights.iter_mut().zip(logits) {
        *w = (l / temperature - max).exp();
    }
    let total: f32 = weights.iter().sum();
    // The CDF never falls (each step adds a weight >= 0; NaN stays NaN), so the levels whose CDF
    // is below `u` are those before the first that reaches it.
    let mut cdf = 0f32;
    let below = weights
        .iter()
        .take_while(|&&w| {
            cdf += w / total;
            cdf < u
        })
        .count();
    below.min(levels.saturating_sub(1)) as i64
}

/// The thread count libtorch is set to (at least 1): the host sampler's share where the caller
/// has nothing else to go by, as the trainer, the estimator and `pixelx sample` do.
pub fn libtorch_threads() -> usize {
    tch::get_num_threads().max(1) as usize
}

/// Samples `labels.len()` images of `height × width`, returning levels `[N, C, H, W]` (int64).
/// `host_threads` is how many threads the cached sampler uses on the CPU (it runs without
/// libtorch there; elsewhere libtorch's own threads do the work).
pub fn sample(
    model: &PixelCnn,
    labels: &Tensor,
    (height, width): (i64, i64),
    temperature: f64,
    sampler: Sampler,
    seed: u64,
    host_threads: usize,
) -> Tensor {
    let mut draws = Draws::new(seed, temperature);
    match sampler {
        Sampler::Naive => sample_naive(model, labels, height, width, &mut draws),
        Sampler::Cached if on_host(model, labels) => {
            sample_host(model, labels, (height, width), &mut draws, host_threads.max(1))
        }
        Sampler::Cached => sample_cached(model, labels, height, width, &mut draws),
    }
}

/// Whether the model and labels live on the CPU, where the host sampler runs the cached
/// sampler without libtorch in the loop.
fn on_host(model: &PixelCnn, labels: &Tensor) -> bool {
    model.out.weight.device() == tch::Device::Cpu && labels.device() == tch::Device::Cpu
}

fn sample_naive(model: &PixelCnn, labels: &Tensor, height: i64, width: i64, draws: &mut Draws) -> Tensor {
    let spec = model.spec;
    let n = labels.size()[0];
    let device = labels.device();
    let scale = (spec.levels - 1) as f64;
    let levels = Tensor::zeros([n, spec.channels, height, width], (Kind::Int64, device));
    tch::no_grad(|| {
        for i in 0..height {
            for j in 0..width {
                for c in 0..spec.channels {
                    let x = levels.to_kind(Kind::Float) / scale;
                    let logits = model.forward(&x, labels).select(2, c).select(2, i).select(2, j);
                    let drawn = Tensor::from_slice(&draws.draw(&logits)).to_device(device);
                    levels.select(1, c).select(1, i).select(1, j).copy_(&drawn);
                }
            }
        }
    });
    levels
}

/// Labels for `count` samples: all `label`, or a cycle through the classes when `label` is None.
pub fn sample_labels(count: i64, label: Option<i64>, classes: i64, device: tch::Device) -> Tensor {
    let values: Vec<i64> = (0..count).map(|i| label.unwrap_or(i % classes)).collect();
    Tensor::from_slice(&values).to_device(device)
}

/// `count` labels drawn uniformly from the classes with pixelx's own generator.
pub fn random_labels(count: i64, classes: i64, seed: u64, device: tch::Device) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6c61_6265_6c73);
    let values: Vec<i64> = (0..count).map(|_| rng.gen_range(0..classes)).collect();
    Tensor::from_slice(&values).to_device(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition `draw_one` implements, as it was first written: two passes over the
    /// logits and a count of every CDF value below `u`.
    fn by_definition(logits: &[f32], u: f32, temperature: f32) -> i64 {
        let max = logits
            .iter()
            .map(|&l| l / temperature)
            .fold(f32::NEG_INFINITY, f32::max);
        let total: f32 = logits.iter().map(|&l| (l / temperature - max).exp()).sum();
        let mut cdf = 0f32;
        let below = logits
            .iter()
            .filter(|&&l| {
                cdf += (l / temperature - max).exp() / total;
                cdf < u
            })
            .count() as i64;
        below.min(logits.len() as i64 - 1)
    }

    #[test]
    fn draws_equal_the_two_pass_definition_bit_for_bit() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for levels in [2usize, 3, 17, 256, 300] {
            for _ in 0..400 {
                let scale = rng.gen_range(0.1f32..40.0);
                let logits: Vec<f32> = (0..levels).map(|_| rng.gen_range(-1.0f32..1.0) * scale).collect();
                let u = rng.gen::<f32>();
                let t = [1.0f32, 0.8, 0.05][rng.gen_range(0..3)];
                assert_eq!(draw_one(&logits, u, t), by_definition(&logits, u, t));
            }
            // u at the edges, and a NaN logit (every CDF value NaN: level 0, as before).
            let logits: Vec<f32> = (0..levels).map(|i| i as f32 * 0.1).collect();
            for u in [0.0, 1.0 - f32::EPSILON, 1.0] {
                assert_eq!(draw_one(&logits, u, 1.0), by_definition(&logits, u, 1.0));
            }
            let mut nan = logits.clone();
            nan[levels / 2] = f32::NAN;
            assert_eq!(draw_one(&nan, 0.5, 1.0), by_definition(&nan, 0.5, 1.0));
        }
    }
}
