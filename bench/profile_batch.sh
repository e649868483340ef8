#!/usr/bin/env bash
# Issue 12, item 2: where one serving batch spends its time (examples/profile_batch.rs), on the
# model VOC_PROFILE_MODEL (a version folder) or, when unset, on a Q1 model (CNN, n-gram branch,
# TF-IDF companion: today's default) trained here first on airline train (~15 min on 2 CPUs).
# The database write goes to a scratch database `voc_profile` that it drops at the end.
#   bash bench/profile_batch.sh                 # PROFILE_ARGS="--batch 64 --batches 400"
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh >/dev/null
AIR="${VOC_SHARED_DATA:-$PWD/../shared/data}/airline"
WORK="$(mktemp -d)"
ADMIN_URL="${PROFILE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
trap 'psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS voc_profile" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
MODEL="${VOC_PROFILE_MODEL:-}"
if [ -z "$MODEL" ]; then
  echo "profile: training a Q1 model on $AIR/train.jsonl" >&2
  MODEL="$("$CARGO_TARGET_DIR/debug/voc" train --train "$AIR/train.jsonl" --valid "$AIR/valid.jsonl" \
    --tasks sentiment,reason --target-task sentiment --store "$WORK" --seed 13 | tail -1)"
fi
psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS voc_profile" -c "CREATE DATABASE voc_profile" >/dev/null
cargo run -q --example profile_batch -- --model "$MODEL" --data "$AIR/test.jsonl" \
  --database-url "${ADMIN_URL%/*}/voc_profile" ${PROFILE_ARGS:-}
