//! Dataset readers on the real MNIST and Fashion-MNIST files, and on small CIFAR-10 files made here.
//! Belongs here: reading, checking and quantising dataset files.

use crate::support;
use pixelx::data::{quantise, read_raw, Dataset, DatasetKind, Split};
use tch::{Device, Kind};

#[test]
fn real_mnist_and_fashion_mnist_have_their_published_shapes() {
    for name in [DatasetKind::Mnist, DatasetKind::Fashionmnist] {
        let train = read_raw(name, Split::Train, &support::data_dir()).unwrap();
        let test = read_raw(name, Split::Test, &support::data_dir()).unwrap();
        assert_eq!(
            (train.count, train.channels, train.height, train.width),
            (60_000, 1, 28, 28),
            "{name}"
        );
        assert_eq!(test.count, 10_000);
        let mut per_class = [0usize; 10];
        test.labels.iter().for_each(|&l| per_class[l as usize] += 1);
        assert!(
            per_class.iter().all(|&n| n > 800),
            "{name}: every class present: {per_class:?}"
        );
    }
}

#[test]
fn quantised_tensors_follow_the_raw_bytes() {
    let raw = read_raw(DatasetKind::Mnist, Split::Test, &support::data_dir()).unwrap();
    for levels in [2i64, 4, 256] {
        let d = Dataset::from_raw(&raw, 100, 1, levels, DatasetKind::Mnist, Device::Cpu);
        assert_eq!(d.levels.size(), vec![100, 1, 28, 28]);
        let got = Vec::<u8>::try_from(d.levels.flatten(0, -1)).unwrap();
        let want: Vec<u8> = raw.pixels[..100 * 784]
            .iter()
            .map(|&v| quantise(v, levels as u32))
            .collect();
        assert_eq!(got, want, "L = {levels}");
    }
    let rgb = Dataset::from_raw(&raw, 10, 3, 4, DatasetKind::Mnist, Device::Cpu);
    assert_eq!(rgb.levels.size(), vec![10, 3, 28, 28]);
    let diff = (rgb.levels.select(1, 0).to_kind(Kind::Int) - rgb.levels.select(1, 2).to_kind(Kind::Int))
        .abs()
        .max();
    assert_eq!(diff.int64_value(&[]), 0, "replicated grayscale has equal planes");
}

#[test]
fn truncated_or_mislabelled_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mnist = dir.path().join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    let src = support::data_dir().join("mnist");
    for f in ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
        std::fs::copy(src.join(f), mnist.join(f)).unwrap();
    }
    let labels = mnist.join("t10k-labels-idx1-ubyte");
    let mut bytes = std::fs::read(&labels).unwrap();
    bytes.truncate(bytes.len() - 10);
    std::fs::write(&labels, &bytes).unwrap();
    let err = read_raw(DatasetKind::Mnist, Split::Test, dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("t10k-labels-idx1-ubyte") && err.contains("need 10000 data bytes, the file has 9990"),
        "{err}"
    );
    std::fs::write(&labels, b"\x00\x00\x08\x03rest").unwrap();
    let err = read_raw(DatasetKind::Mnist, Split::Test, dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("magic number 0x00000803, expected 0x00000801"),
        "{err}"
    );
}

/// Writes CIFAR-10 binary files with `per_file` records whose pixels encode (image, channel).
fn write_cifar(dir: &std::path::Path, per_file: usize) {
    let files = [
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "test_batch",
    ];
    for (f, name) in files.iter().enumerate() {
        let mut bytes = Vec::new();
        for i in 0..per_file {
            bytes.push(((f + i) % 10) as u8);
            for c in 0..3u8 {
                bytes.extend(std::iter::repeat_n(c * 100 + i as u8, 1024));
            }
        }
        std::fs::write(dir.join(format!("{name}.bin")), bytes).unwrap();
    }
}

#[test]
fn cifar_binary_records_become_rgb_planes() {
    let dir = tempfile::tempdir().unwrap();
    let cifar = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir_all(&cifar).unwrap();
    write_cifar(&cifar, 3);
    let train = read_raw(DatasetKind::Cifar, Split::Train, dir.path()).unwrap();
    assert_eq!(
        (train.count, train.channels, train.height, train.width),
        (15, 3, 32, 32)
    );
    assert_eq!(train.labels[..4], [0, 1, 2, 1]);
    let img1 = &train.pixels[3072..2 * 3072];
    assert_eq!(
        (img1[0], img1[1024], img1[2048]),
        (1, 101, 201),
        "R, G, B planes in order"
    );
    let test = read_raw(DatasetKind::Cifar, Split::Test, dir.path()).unwrap();
    assert_eq!(test.count, 3);

    std::fs::write(cifar.join("test_batch.bin"), vec![0u8; 3073 + 5]).unwrap();
    let err = read_raw(DatasetKind::Cifar, Split::Test, dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("test_batch.bin") && err.contains("not a whole number of 3073-byte records"),
        "{err}"
    );
    std::fs::remove_file(cifar.join("data_batch_3.bin")).unwrap();
    let err = read_raw(DatasetKind::Cifar, Split::Train, dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("data_batch_3.bin: file not found") && err.contains("PIXELX_CIFAR_DIR"),
        "{err}"
    );
}
