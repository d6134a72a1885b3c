#!/usr/bin/env bash
# Creates .venv with torch 2.11.0 (libtorch for tch), numpy, safetensors, pandas, pytest, just and
# the notebook package (python/), and points .libtorch at the wheel's torch folder for
# .cargo/config.toml. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
need = {"torch": "2.11.0", "pandas": "2.3.3", "pytest": "9.2.0"}
ok = all(m.version(p).split("+")[0] == v for p, v in need.items())
for p in ("numpy", "safetensors", "rust-just"):
    m.version(p)
sys.exit(0 if ok else 1)
PY
then
  echo "setup: installing torch 2.11.0 and friends into .venv (a few GB, once)" >&2
  .venv/bin/pip install --quiet -r requirements.txt
fi
ln -sfn "$(.venv/bin/python -c 'import os, torch; print(os.path.dirname(torch.__file__))')" .libtorch
# The notebook package (python/), installed again whenever its sources change.
stamp=.venv/.pixelx-python.sha256
sum=$(cat python/pyproject.toml python/reference_pixelcnn.py python/pixelx/*.py | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
  echo "setup: installing the notebook package (python/) into .venv" >&2
  if .venv/bin/pip install --quiet ./python; then
    echo "$sum" > "$stamp"
  else
    # Building it needs setuptools from PyPI; the tests use the sources in python/ regardless.
    echo "setup: warning: could not install python/ into .venv (offline?); pip install ./python later" >&2
  fi
fi
