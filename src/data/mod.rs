//! Datasets: reading MNIST, Fashion-MNIST and CIFAR-10 from their published formats, quantising
//! pixels to the model's colour levels, and handing out shuffled mini-batches.

mod cifar;
mod idx;
mod kind;

pub use kind::DatasetKind;

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

/// A dataset file is missing or unreadable; the message names the file and how to get it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: file not found. {hint}")]
    Missing { path: PathBuf, hint: String },
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Which half of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// Raw 8-bit images (`[n, channels, height, width]`, row-major) with their class labels.
#[derive(Debug, Clone)]
pub struct RawImages {
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
    pub count: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

/// Reads one split of a dataset from disk.
pub fn read_raw(dataset: DatasetKind, split: Split, data_dir: &Path) -> Result<RawImages, DataError> {
    let dir = dataset.dir(data_dir);
    let hint = dataset.fetch_hint();
    let raw = match dataset {
        DatasetKind::Mnist => idx::read_pair(&dir, split, "", hint),
        DatasetKind::Fashionmnist => idx::read_pair(&dir, split, ".gz", hint),
        DatasetKind::Cifar => cifar::read(&dir, split),
    }?;
    check_shape(dataset, &raw, &dir)?;
    Ok(raw)
}

/// Refuses files whose images are not the dataset's shape (IDX files of another image size in
/// the mnist folder): a model would otherwise be trained and recorded as one of that dataset.
fn check_shape(dataset: DatasetKind, raw: &RawImages, dir: &Path) -> Result<(), DataError> {
    let side = dataset.side() as usize;
    let channels = dataset.channels() as usize;
    if (raw.height, raw.width, raw.channels) == (side, side, channels) {
        return Ok(());
    }
    Err(DataError::Corrupt {
        path: dir.into(),
        reason: format!(
            "these images are {}x{} with {} channel(s), but {} images are {side}x{side} with \
             {channels}: the files are another dataset",
            raw.height,
            raw.width,
            raw.channels,
            dataset.name()
        ),
    })
}

/// Checks that a dataset's files are present, without reading them: a cheap early error before a
/// run is registered.
pub fn check_available(dataset: DatasetKind, data_dir: &Path) -> Result<(), DataError> {
    match dataset.files(data_dir).into_iter().find(|f| !f.is_file()) {
        Some(path) => Err(DataError::Missing {
            path,
            hint: dataset.fetch_hint().into(),
        }),
        None => Ok(()),
    }
}

/// Quantises one byte to `levels` levels: `floor(v · L / 256)`.
pub fn quantise(v: u8, levels: u32) -> u8 {
    ((v as u32 * levels) / 256) as u8
}

/// How many byte values fall into each level: the width of each level's bin, used by `bpd8`.
pub fn level_bin_widths(levels: u32) -> Vec<u32> {
    let mut widths = vec![0u32; levels as usize];
    for v in 0..=255u8 {
        widths[quantise(v, levels) as usize] += 1;
    }
    widths
}

/// A dataset split ready for training: quantised levels on the training device.
pub struct Dataset {
    /// `[n, C, H, W]`, uint8 levels in `0..L`.
    pub levels: Tensor,
    /// `[n]`, int64 class labels.
    pub labels: Tensor,
    pub color_levels: i64,
    pub classes: i64,
}

impl Dataset {
    /// Loads, subsets (first `subset` images; 0 = all), optionally replicates grayscale to
    /// `channels` channels and quantises, in parallel.
    pub fn load(
        dataset: DatasetKind,
        split: Split,
        data_dir: &Path,
        subset: usize,
        channels: usize,
        color_levels: i64,
        device: Device,
    ) -> Result<Self, DataError> {
        let raw = read_raw(dataset, split, data_dir)?;
        Ok(Self::from_raw(
            &raw,
            subset,
            channels,
            color_levels,
            dataset,
            device,
        ))
    }

    pub fn from_raw(
        raw: &RawImages,
        subset: usize,
        channels: usize,
        levels: i64,
        dataset: DatasetKind,
        device: Device,
    ) -> Self {
        let n = if subset == 0 {
            raw.count
        } else {
            subset.min(raw.count)
        };
        let plane = raw.height * raw.width;
        let per_image = raw.channels * plane;
        let replicate = channels / raw.channels;
        let l = levels as u32;
        let quantised: Vec<u8> = raw.pixels[..n * per_image]
            .par_chunks(per_image)
            .flat_map_iter(|img| (0..replicate).flat_map(move |_| img.iter().map(move |&v| quantise(v, l))))
            .collect();
        let shape = [n as i64, channels as i64, raw.height as i64, raw.width as i64];
        let labels: Vec<i64> = raw.labels[..n].iter().map(|&l| l as i64).collect();
        Self {
            levels: Tensor::from_slice(&quantised).reshape(shape).to_device(device),
            labels: Tensor::from_slice(&labels).to_device(device),
            color_levels: levels,
            classes: dataset.classes(),
        }
    }

    pub fn len(&self) -> i64 {
        self.labels.size()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Images `[n, C, H, W]` as the network's float input `level / (L - 1)`.
    pub fn as_input(levels: &Tensor, color_levels: i64) -> Tensor {
        levels.to_kind(Kind::Float) / (color_levels - 1) as f64
    }

    /// The batch at `indices`: (input, target levels as int64, labels).
    pub fn batch(&self, indices: &Tensor) -> (Tensor, Tensor, Tensor) {
        let levels = self.levels.index_select(0, indices);
        let input = Self::as_input(&levels, self.color_levels);
        (
            input,
            levels.to_kind(Kind::Int64),
            self.labels.index_select(0, indices),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantisation_follows_the_formula() {
        assert_eq!(quantise(0, 2), 0);
        assert_eq!(quantise(127, 2), 0);
        assert_eq!(quantise(128, 2), 1);
        assert_eq!(quantise(255, 2), 1);
        assert_eq!(quantise(255, 256), 255);
        assert_eq!(quantise(25, 10), 0);
        assert_eq!(quantise(26, 10), 1);
        for l in 2..=256u32 {
            assert_eq!((0..=255u8).map(|v| quantise(v, l) as u32).max(), Some(l - 1));
        }
    }

    #[test]
    fn bin_widths_cover_all_bytes() {
        assert_eq!(level_bin_widths(2), vec![128, 128]);
        assert_eq!(level_bin_widths(256), vec![1; 256]);
        let w = level_bin_widths(10);
        assert_eq!(w.iter().sum::<u32>(), 256);
        assert!(w.iter().all(|&x| x == 25 || x == 26));
    }
}
