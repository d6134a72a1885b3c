#!/usr/bin/env bash
# Installs Debian's `chromium` (for the dashboard's browser test and docs screenshot) unless a
# chromium is already on PATH. Idempotent and quick when present. Needs root or sudo for apt-get.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo="sudo -n"
  else
    echo "setup-chromium: chromium is missing and installing it needs root (apt-get install chromium)" >&2
    exit 1
  fi
fi
echo "setup-chromium: installing Debian's chromium (once)" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine's package lists may be missing or stale: update once if the install fails.
# fonts-dejavu-core: headless chromium needs at least one font to lay out text.
pkgs=(chromium fonts-dejavu-core)
$sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null 2>&1 \
  || { $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null; }
command -v chromium >/dev/null
