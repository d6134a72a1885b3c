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

# Run the built-in quickstart experiment end to end (about two minutes on 2 cores) and show its report.
demo: setup
    {{bin}} run experiments/quickstart.toml
    {{bin}} report
    {{bin}} report --best --html runs/report.html
    @echo "HTML report: runs/report.html"

# Expand, schedule and train an experiment file (re-running finishes what is unfinished).
run file *args: setup
    {{bin}} run "{{file}}" "$@"

# Compare runs (any `pixelx report` flags).
report *args: setup
    {{bin}} report "$@"

# Every test: the notebook package's pytest suite, then unit and integration tests on real MNIST,
# a real SQLite file and real worker processes, the PyTorch parity check, the dashboard in
# Debian's headless Chromium, and `pixelx sync mlflow` against a real MLflow server (pinned into .venv).
test: setup
    scripts/setup-chromium.sh
    scripts/setup-mlflow.sh
    python -m pytest -q python/tests
    cargo test --no-fail-fast -- --test-threads 2

# Train one model with the original train.py flags.
train *args: setup
    {{bin}} train "$@"

# Continue an interrupted run from its last intact checkpoint.
resume run_id: setup
    {{bin}} resume "{{run_id}}"

# Benchmarks (ratios against baselines measured in the same invocation); name parts to run only
# those: training, sampling, registry, packing, slurm, estimate, report, search.
bench *parts: setup
    scripts/setup-optuna.sh
    cargo bench --quiet --bench speed --bench report --bench search -- "$@"

# The live dashboard over the registry on http://127.0.0.1:8080 (any `pixelx serve` flags).
serve *args: setup
    {{bin}} serve "$@"

# A real single-node Slurm cluster on this machine (Debian's slurm packages; root). Then
# `eval "$(scripts/slurm-local.sh env)"` points pixelx and Slurm's tools at it.
slurm-up:
    scripts/slurm-local.sh up

# Stop what `just slurm-up` started.
slurm-down:
    scripts/slurm-local.sh down

# The Slurm backend's tests; they start and stop a cluster of their own.
slurm-test: setup
    cargo test --test it slurm:: -- --nocapture

# Pack release binaries and MNIST into .gpu/ for scripts/gpu-check.sh on a GPU machine.
gpu-bundle: setup
    scripts/gpu-bundle.sh

# Shell completions (bash, zsh, fish; run ids complete from the registry) and manual pages,
# installed for your user. The scripts call `pixelx`, so put it on your PATH.
install-completions:
    cargo build --quiet
    @data="${XDG_DATA_HOME:-$HOME/.local/share}"; \
    bash_dir="${BASH_COMPLETION_USER_DIR:-$data/bash-completion}/completions"; \
    fish_dir="${XDG_CONFIG_HOME:-$HOME/.config}/fish/completions"; \
    mkdir -p "$bash_dir" "$data/zsh/site-functions" "$fish_dir" "$data/man/man1"; \
    {{bin}} completions bash > "$bash_dir/pixelx"; \
    {{bin}} completions zsh > "$data/zsh/site-functions/_pixelx"; \
    {{bin}} completions fish > "$fish_dir/pixelx.fish"; \
    {{bin}} man --out-dir "$data/man/man1"; \
    echo "bash: $bash_dir/pixelx (new shells load it); zsh: add $data/zsh/site-functions to fpath before compinit"; \
    echo "fish: $fish_dir/pixelx.fish; man pages: $data/man/man1 (man pixelx, man pixelx-run, ...)"; \
    command -v pixelx > /dev/null || echo "note: pixelx is not on your PATH; e.g. ln -s {{bin}} ~/.local/bin/pixelx"

# clippy with warnings as errors, and rustfmt.
lint:
    cargo clippy --all-targets -- -D warnings
    cargo fmt --check
