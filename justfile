# pixelx tasks. On a fresh machine use ./dev <task>, which installs `just` first.

set shell := ["bash", "-euo", "pipefail", "-c"]
set positional-arguments

export PATH := justfile_directory() + "/.venv/bin:" + env_var("PATH")
export PIXELX_DATA_DIR := env_var_or_default("PIXELX_DATA_DIR", justfile_directory() + "/data")

bin := justfile_directory() + "/target/debug/pixelx"

default:
    @just --list

# Virtual environment with torch 2.11.0, datasets, and the build. Safe to run again.
setup:
    scripts/setup-venv.sh
    scripts/fetch-data.sh "$PIXELX_DATA_DIR"
    cargo build --quiet

# Train a small MNIST model end to end (a couple of minutes on 2 cores) and show its result.
demo: setup
    {{bin}} train --epochs 1 --train-subset 12000 --test-subset 2000 --color-levels 2 --hidden-fmaps 16 --out-hidden-fmaps 16 --hidden-layers 4 --causal-ksize 7 --hidden-ksize 5 --learning-rate 0.002 --max-norm 2 --lr-schedule constant --epoch-samples 25 --batch-size 32

# Every test: Rust unit and integration tests (real MNIST, real processes) and the PyTorch parity check.
test: setup
    cargo test --no-fail-fast -- --test-threads 2

# Train one model with the original train.py flags.
train *args: setup
    {{bin}} train "$@"

# Continue an interrupted run from its last checkpoint.
resume run_id: setup
    {{bin}} resume "{{run_id}}"

# Benchmarks (ratios against baselines measured in the same invocation).
bench: setup
    cargo bench --quiet

# clippy with warnings as errors, and rustfmt.
lint:
    cargo clippy --all-targets -- -D warnings
    cargo fmt --check
