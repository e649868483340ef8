#!/usr/bin/env bash
# Makes everything `voc` needs to build and run: the torch==2.11.0 venv (libtorch) and the
# `voc` binary. Reuses the venv and cargo target folder under ~/.cache/voc when present.
# Prints nothing on stdout but the binary's path (last line), so callers can capture it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

if ! "$VOC_VENV/bin/python" -c 'import torch, sys; sys.exit(0 if torch.__version__.split("+")[0] == "2.11.0" else 1)' 2>/dev/null; then
  echo "setup: creating the torch venv at $VOC_VENV (torch==2.11.0 from PyPI, a few GB, once)" >&2
  mkdir -p "$(dirname "$VOC_VENV")"
  python3 -m venv "$VOC_VENV" >&2
  "$VOC_VENV/bin/pip" install --quiet torch==2.11.0 >&2
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is not installed; install Rust from https://rustup.rs first" >&2
  exit 1
fi

echo "setup: building voc (first build takes a few minutes)" >&2
cargo build --bins >&2
echo "$CARGO_TARGET_DIR/debug/voc"
