#!/usr/bin/env bash
# Packs what `scripts/gpu-check.sh` needs on a GPU machine that cannot fetch anything, into .gpu/
# (ignored by git; about 20 MB, within the device tool's 64 MiB carry limit): the release
# binaries and MNIST, gzip-compressed (the IDX reader recognises gzip by its magic bytes).
# The binaries link libtorch 2.11.0 (+cu130); the device image's python3 has the same version,
# and gpu-check.sh points LD_LIBRARY_PATH at its libraries.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin pixelx
bench="$(cargo bench --no-run --bench speed --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "speed":
        print(m["executable"])')"
rm -rf .gpu && mkdir -p .gpu/data/mnist
cp target/release/pixelx "$bench" .gpu/
mv ".gpu/$(basename "$bench")" .gpu/speed
for f in "${PIXELX_DATA_DIR:-data}"/mnist/*-ubyte; do gzip -c "$f" >".gpu/data/mnist/$(basename "$f")"; done
du -sh .gpu
echo "carry [\".gpu\"] and run: scripts/gpu-check.sh"
