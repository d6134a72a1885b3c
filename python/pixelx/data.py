"""Test sets as `pixelx eval` reads them: the published files, the first N images, each byte
quantised to L levels as floor(v * L / 256) (`src/data/`), and `nll`, `bpd`, `bpd8` over them
(`src/metrics.rs`)."""
import gzip
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

IMAGES_MAGIC = 0x0803
LABELS_MAGIC = 0x0801
CIFAR_SIDE = 32
EVAL_BATCH = 256


def _read(path):
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found; run `just setup` (or `./dev setup`) to fetch it") from None
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _idx(path, magic):
    data = _read(path)
    found = int.from_bytes(data[:4], "big")
    if len(data) < 4 or found != magic:
        raise ValueError(f"{path}: magic number {found:#010x}, expected {magic:#010x}")
    ndims = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndims)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndims)
    if body.size != math.prod(dims):
        raise ValueError(f"{path}: dimensions {dims} need {math.prod(dims)} data bytes, the file has {body.size}")
    return body.reshape(dims)


def read_test_split(dataset, data_dir):
    """(pixels uint8 [n, channels, h, w], labels int64 [n]) of a dataset's test split."""
    data_dir = Path(data_dir)
    if dataset in ("mnist", "fashionmnist"):
        suffix = ".gz" if dataset == "fashionmnist" else ""
        folder = data_dir / dataset
        images = _idx(folder / f"t10k-images-idx3-ubyte{suffix}", IMAGES_MAGIC)
        labels = _idx(folder / f"t10k-labels-idx1-ubyte{suffix}", LABELS_MAGIC)
        return images[:, None, :, :], labels.astype(np.int64)
    if dataset == "cifar":
        folder = Path(os.environ.get("PIXELX_CIFAR_DIR") or data_dir / "cifar-10-batches-bin")
        record = 1 + 3 * CIFAR_SIDE * CIFAR_SIDE
        raw = np.frombuffer(_read(folder / "test_batch.bin"), dtype=np.uint8)
        if raw.size == 0 or raw.size % record:
            raise ValueError(f"{folder / 'test_batch.bin'}: {raw.size} bytes is not a whole number of {record}-byte records")
        raw = raw.reshape(-1, record)
        return raw[:, 1:].reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE), raw[:, 0].astype(np.int64)
    raise ValueError(f"unknown dataset `{dataset}`; expected one of mnist, fashionmnist, cifar")


def quantise(pixels, levels):
    """floor(v * L / 256) of each byte, as uint8 levels in 0..L."""
    return ((pixels.astype(np.uint32) * levels) // 256).astype(np.uint8)


def level_bin_widths(levels):
    """How many byte values fall into each level (what `bpd8` spreads a level over)."""
    return np.bincount(quantise(np.arange(256, dtype=np.uint8), levels), minlength=levels)


def test_levels(dataset, data_dir, subset, channels, levels):
    """The first `subset` test images (0 = all) quantised, grayscale repeated to `channels`:
    (levels int64 [n, channels, h, w], labels int64 [n])."""
    pixels, labels = read_test_split(dataset, data_dir)
    n = len(labels) if subset <= 0 else min(subset, len(labels))
    pixels, labels = pixels[:n], labels[:n]
    if channels != pixels.shape[1]:
        pixels = np.concatenate([pixels] * (channels // pixels.shape[1]), axis=1)
    return torch.from_numpy(quantise(pixels, levels).astype(np.int64)), torch.from_numpy(labels)


@torch.no_grad()
def evaluate(model, levels, labels, color_levels, batch_size=EVAL_BATCH):
    """Mean test `nll` (nats), `bpd` and `bpd8` per sub-pixel, as `pixelx eval` computes them."""
    log2_widths = torch.from_numpy(np.log2(level_bin_widths(color_levels).astype(np.float64)))
    device = next(model.parameters()).device
    nll_sum = width_sum = 0.0
    count = 0
    for start in range(0, len(labels), batch_size):
        target = levels[start:start + batch_size].to(device)
        x = target.float() / (color_levels - 1)
        logits = model(x, labels[start:start + batch_size].to(device))
        nll_sum += F.cross_entropy(logits, target, reduction="sum").item()
        width_sum += log2_widths[target.flatten().cpu()].sum().item()
        count += target.numel()
    nll = nll_sum / count
    bpd = nll / math.log(2)
    return {"nll": nll, "bpd": bpd, "bpd8": bpd + width_sum / count, "images": len(labels)}
