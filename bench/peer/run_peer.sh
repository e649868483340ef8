#!/usr/bin/env bash
# Starts the Python peer (bench/peer/voc_peer.py: FastAPI + PyTorch, the service a Python team
# would write instead) on a voc model version of today's default layout, for side-by-side
# serving benchmarks (bench/load.sh runs it).
#   bash bench/peer/run_peer.sh MODEL_DIR PORT DATABASE_URL [WORKERS]   (foreground; kill to stop)
#   bash bench/peer/run_peer.sh --check MODEL_DIR VOC_PREDICT.jsonl TEXTS.txt
# The venv at ~/.cache/voc/peer-venv reuses the project's torch venv (VOC_VENV, default
# ~/.cache/voc/torch-venv) and adds fastapi, uvicorn, asyncpg, safetensors, tokenizers and
# numpy from PyPI, once. WORKERS defaults to the number of CPUs.
set -euo pipefail
TORCH_VENV=${VOC_VENV:-$HOME/.cache/voc/torch-venv}
PEER=$HOME/.cache/voc/peer-venv
if [ ! -x "$PEER/bin/uvicorn" ] || ! "$PEER/bin/python" -c 'import numpy, safetensors, tokenizers, asyncpg, fastapi' 2>/dev/null; then
  python3 -m venv "$PEER"
  site=$("$TORCH_VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])')
  echo "$site" >"$("$PEER/bin/python" -c 'import site; print(site.getsitepackages()[0])')/voc-torch.pth"
  "$PEER/bin/pip" install --quiet fastapi "uvicorn[standard]" asyncpg safetensors tokenizers numpy >&2
fi
cd "$(dirname "$0")"
if [ "${1:-}" = --check ]; then
  exec "$PEER/bin/python" voc_peer.py "$@"
fi
MODEL=$1; PORT=$2; DB=$3; WORKERS=${4:-$(nproc)}
VOC_MODEL="$MODEL" DATABASE_URL="$DB" exec "$PEER/bin/uvicorn" voc_peer:app \
  --workers "$WORKERS" --host 127.0.0.1 --port "$PORT" --log-level warning
