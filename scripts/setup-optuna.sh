#!/usr/bin/env bash
# Installs the pinned Optuna into the project's .venv, for `just bench search` (benches/optuna_replay.py
# replays Optuna's samplers and pruner on the same recorded tables as pixelx's) and for recording
# the Optuna values the multivariate Parzen estimator's unit test compares against
# (scripts/optuna_parzen_cases.py). Idempotent and quick when the pinned version is already there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# The pin lives in requirements.txt (scripts/setup-venv.sh installs it too).
OPTUNA_VERSION="$(sed -n 's/^optuna==//p' "$root/requirements.txt")"
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
  echo "setup-optuna: $venv is missing; run scripts/setup-venv.sh first" >&2
  exit 1
fi
have="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("optuna"))' 2>/dev/null || true)"
if [ "$have" = "$OPTUNA_VERSION" ]; then
  exit 0
fi
echo "setup-optuna: installing optuna==$OPTUNA_VERSION into .venv (once)" >&2
# The constraints keep what requirements.txt pins (numpy and pandas for the notebook package, torch).
"$venv/bin/pip" install --quiet --disable-pip-version-check -c "$root/requirements.txt" "optuna==$OPTUNA_VERSION"
"$venv/bin/python" -c 'import optuna' >/dev/null
