#!/usr/bin/env bash
# Installs the pinned MLflow into the project's .venv, for `pixelx sync mlflow`'s integration test
# (tests/it/mlflow_sync.rs starts a real `mlflow server` from it) and for looking at a synced sweep.
# Idempotent and quick when the pinned version is already there.
set -euo pipefail
MLFLOW_VERSION=3.17.2
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
  echo "setup-mlflow: $venv is missing; run scripts/setup-venv.sh first" >&2
  exit 1
fi
have="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("mlflow"))' 2>/dev/null || true)"
if [ "$have" = "$MLFLOW_VERSION" ] && [ -x "$venv/bin/mlflow" ]; then
  exit 0
fi
echo "setup-mlflow: installing mlflow==$MLFLOW_VERSION into .venv (once)" >&2
# The constraints keep what requirements.txt pins (pandas for the notebook package, torch).
"$venv/bin/pip" install --quiet --disable-pip-version-check -c "$root/requirements.txt" "mlflow==$MLFLOW_VERSION"
"$venv/bin/mlflow" --version >/dev/null
