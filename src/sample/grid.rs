//! Sample images as one PNG grid.

use std::path::Path;

use anyhow::{Context, Result};
use tch::{Kind, Tensor};

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
    crate::fsio::write_atomically(path, &png)
}
