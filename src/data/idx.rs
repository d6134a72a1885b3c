//! The IDX format of MNIST and Fashion-MNIST, raw or gzip-compressed.

use std::io::Read;
use std::path::Path;

use super::{DataError, RawImages, Split};

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Reads `{train,t10k}-{images-idx3,labels-idx1}-ubyte{suffix}` from `dir` and checks they agree.
pub fn read_pair(dir: &Path, split: Split, suffix: &str, hint: &str) -> Result<RawImages, DataError> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let images_path = dir.join(format!("{prefix}-images-idx3-ubyte{suffix}"));
    let labels_path = dir.join(format!("{prefix}-labels-idx1-ubyte{suffix}"));
    let (dims, pixels) = parse(&read_file(&images_path, hint)?, IMAGES_MAGIC, &images_path)?;
    let (label_dims, labels) = parse(&read_file(&labels_path, hint)?, LABELS_MAGIC, &labels_path)?;
    if label_dims[0] != dims[0] {
        return Err(DataError::Corrupt {
            path: labels_path,
            reason: format!("{} labels for {} images", label_dims[0], dims[0]),
        });
    }
    if let Some(&bad) = labels.iter().find(|&&l| l >= 10) {
        return Err(DataError::Corrupt {
            path: labels_path,
            reason: format!("label {bad} is not in 0..10"),
        });
    }
    Ok(RawImages {
        pixels,
        labels,
        count: dims[0],
        channels: 1,
        height: dims[1],
        width: dims[2],
    })
}

/// Reads a file, decompressing it when it starts with the gzip magic bytes.
fn read_file(path: &Path, hint: &str) -> Result<Vec<u8>, DataError> {
    let bytes = std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => DataError::Missing {
            path: path.into(),
            hint: hint.into(),
        },
        _ => DataError::Io {
            path: path.into(),
            source,
        },
    })?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::Corrupt {
                path: path.into(),
                reason: format!("bad gzip stream: {e}"),
            })?;
        Ok(out)
    } else {
        Ok(bytes)
    }
}

/// Parses an unsigned-byte IDX file: magic, big-endian dimensions, then exactly the data.
pub fn parse(bytes: &[u8], magic: u32, path: &Path) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let corrupt = |reason: String| DataError::Corrupt {
        path: path.into(),
        reason,
    };
    let be32 = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let found =
        be32(0).ok_or_else(|| corrupt(format!("{} bytes is too short for an IDX header", bytes.len())))?;
    if found != magic {
        return Err(corrupt(format!(
            "magic number {found:#010x}, expected {magic:#010x}"
        )));
    }
    let ndims = (magic & 0xff) as usize;
    let dims: Vec<usize> = (0..ndims)
        .map(|i| be32(4 + 4 * i).map(|d| d as usize))
        .collect::<Option<_>>()
        .ok_or_else(|| corrupt("truncated IDX header".into()))?;
    let header = 4 + 4 * ndims;
    let expected = dims.iter().product::<usize>();
    if bytes.len() - header != expected || dims.contains(&0) {
        return Err(corrupt(format!(
            "dimensions {dims:?} need {expected} data bytes, the file has {}",
            bytes.len() - header
        )));
    }
    Ok((dims, bytes[header..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v.extend(data);
        v
    }

    #[test]
    fn parses_a_valid_file() {
        let bytes = idx(IMAGES_MAGIC, &[2, 2, 3], &[1; 12]);
        let (dims, data) = parse(&bytes, IMAGES_MAGIC, Path::new("x")).unwrap();
        assert_eq!(dims, vec![2, 2, 3]);
        assert_eq!(data.len(), 12);
    }

    #[test]
    fn rejects_bad_magic_truncation_and_excess() {
        let p = Path::new("f");
        let msg = |b: Vec<u8>| parse(&b, IMAGES_MAGIC, p).unwrap_err().to_string();
        assert!(msg(idx(LABELS_MAGIC, &[2], &[0; 2])).contains("magic number"));
        assert!(msg(idx(IMAGES_MAGIC, &[2, 2, 3], &[0; 11])).contains("need 12 data bytes, the file has 11"));
        assert!(msg(idx(IMAGES_MAGIC, &[2, 2, 3], &[0; 13])).contains("the file has 13"));
        assert!(msg(vec![0, 0]).contains("too short"));
        assert!(msg(IMAGES_MAGIC.to_be_bytes().to_vec()).contains("truncated"));
    }
}
