//! Generating images from a trained model, and writing them as a PNG grid.

use std::path::Path;

use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use crate::model::PixelCnn;

/// How sub-pixels are generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sampler {
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

    /// One level per image from `logits` `[N, L]`, as int64 `[N]`.
    pub fn draw(&mut self, logits: &Tensor) -> Tensor {
        let (n, levels) = logits.size2().expect("logits are [N, L]");
        let u: Vec<f32> = (0..n).map(|_| self.rng.gen::<f32>()).collect();
        let u = Tensor::from_slice(&u).to_device(logits.device()).unsqueeze(1);
        let cdf = (logits / self.temperature)
            .softmax(-1, Kind::Float)
            .cumsum(-1, Kind::Float);
        cdf.lt_tensor(&u)
            .sum_dim_intlist([1i64].as_slice(), false, Kind::Int64)
            .clamp_max(levels - 1)
    }
}

/// Samples `labels.len()` images of `height × width`, returning levels `[N, C, H, W]` (int64).
pub fn sample(
    model: &PixelCnn,
    labels: &Tensor,
    height: i64,
    width: i64,
    temperature: f64,
    sampler: Sampler,
    seed: u64,
) -> Tensor {
    let mut draws = Draws::new(seed, temperature);
    match sampler {
        Sampler::Naive => sample_naive(model, labels, height, width, &mut draws),
    }
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
                    let drawn = draws.draw(&logits);
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

/// Writes levels `[N, C, H, W]` as one PNG: a near-square grid with 2-pixel gaps (as torchvision's
/// `make_grid`), levels stretched to 0..255, grayscale for one channel and RGB for three.
pub fn write_grid(levels: &Tensor, color_levels: i64, path: &Path) -> Result<()> {
    let (n, c, h, w) = levels.size4().context("samples must be [N, C, H, W]")?;
    let n = n.max(1);
    let cols = (n as f64).sqrt().ceil() as i64;
    let rows = (n + cols - 1) / cols;
    let pad = 2;
    let (gw, gh) = (cols * (w + pad) + pad, rows * (h + pad) + pad);
    let bytes = (levels.to_device(tch::Device::Cpu).to_kind(Kind::Float)
        * (255.0 / (color_levels - 1) as f64))
        .round()
        .clamp(0.0, 255.0)
        .to_kind(Kind::Uint8);
    let data = Vec::<u8>::try_from(bytes.flatten(0, -1))?;
    let mut img = image::RgbImage::new(gw as u32, gh as u32);
    for k in 0..levels.size()[0] {
        let (oy, ox) = (pad + (k / cols) * (h + pad), pad + (k % cols) * (w + pad));
        for y in 0..h {
            for x in 0..w {
                let at = |ch: i64| data[(((k * c + ch) * h + y) * w + x) as usize];
                let px = if c == 3 { [at(0), at(1), at(2)] } else { [at(0); 3] };
                img.put_pixel((ox + x) as u32, (oy + y) as u32, image::Rgb(px));
            }
        }
    }
    let mut png = Vec::new();
    if c == 3 {
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    } else {
        image::DynamicImage::ImageRgb8(img)
            .into_luma8()
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    }
    crate::weights::write_atomically(path, &png)
}
