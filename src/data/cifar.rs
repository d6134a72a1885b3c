//! The CIFAR-10 binary release: records of one label byte and 3,072 pixel bytes (R, G, B planes).

use std::path::Path;

use super::{DataError, RawImages, Split};

const SIDE: usize = 32;
const RECORD: usize = 1 + 3 * SIDE * SIDE;

pub fn read(dir: &Path, split: Split) -> Result<RawImages, DataError> {
    let files: Vec<String> = match split {
        Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        Split::Test => vec!["test_batch.bin".into()],
    };
    let mut raw = RawImages {
        pixels: Vec::new(),
        labels: Vec::new(),
        count: 0,
        channels: 3,
        height: SIDE,
        width: SIDE,
    };
    for name in files {
        let path = dir.join(&name);
        let bytes = std::fs::read(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => DataError::Missing {
                path: path.clone(),
                hint: "place the CIFAR-10 binary release there, or point PIXELX_CIFAR_DIR at its folder"
                    .into(),
            },
            _ => DataError::Io {
                path: path.clone(),
                source,
            },
        })?;
        if bytes.is_empty() || bytes.len() % RECORD != 0 {
            return Err(DataError::Corrupt {
                path,
                reason: format!(
                    "{} bytes is not a whole number of {RECORD}-byte records",
                    bytes.len()
                ),
            });
        }
        for record in bytes.chunks_exact(RECORD) {
            if record[0] >= 10 {
                return Err(DataError::Corrupt {
                    path,
                    reason: format!("label {} is not in 0..10", record[0]),
                });
            }
            raw.labels.push(record[0]);
            raw.pixels.extend_from_slice(&record[1..]);
            raw.count += 1;
        }
    }
    Ok(raw)
}
