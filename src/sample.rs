//! Generating images from a trained model, and writing them as a PNG grid.

use std::path::Path;

use anyhow::{Context, Result};
use tch::{Kind, Tensor};

use crate::model::PixelCnn;

/// How sub-pixels are generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sampler {
    /// One full forward pass over the whole image per sub-pixel, as the original does.
    Naive,
}

/// Draws one level per image from `logits` `[N, L]` at `temperature`.
fn draw(logits: &Tensor, temperature: f64) -> Tensor {
    (logits / temperature).softmax(-1, Kind::Float).multinomial(1, false).squeeze_dim(1)
}

/// Samples `labels.len()` images of `height × width`, returning levels `[N, C, H, W]` (int64).
/// Randomness comes from torch's global generator: seed it first for reproducible images.
pub fn sample(model: &PixelCnn, labels: &Tensor, height: i64, width: i64, temperature: f64, sampler: Sampler) -> Tensor {
    match sampler {
        Sampler::Naive => sample_naive(model, labels, height, width, temperature),
    }
}

fn sample_naive(model: &PixelCnn, labels: &Tensor, height: i64, width: i64, temperature: f64) -> Tensor {
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
                    let drawn = draw(&logits, temperature);
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

/// Writes levels `[N, C, H, W]` as one PNG: a near-square grid with 2-pixel gaps (as torchvision's
/// `make_grid`), levels stretched to 0..255, grayscale for one channel and RGB for three.
pub fn write_grid(levels: &Tensor, color_levels: i64, path: &Path) -> Result<()> {
    let (n, c, h, w) = levels.size4().context("samples must be [N, C, H, W]")?;
    let n = n.max(1);
    let cols = (n as f64).sqrt().ceil() as i64;
    let rows = (n + cols - 1) / cols;
    let pad = 2;
    let (gw, gh) = (cols * (w + pad) + pad, rows * (h + pad) + pad);
    let bytes = (levels.to_device(tch::Device::Cpu).to_kind(Kind::Float) * (255.0 / (color_levels - 1) as f64))
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
        image::DynamicImage::ImageRgb8(img).into_luma8().write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    }
    crate::weights::write_atomically(path, &png)
}
