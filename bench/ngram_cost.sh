#!/usr/bin/env bash
# What the n-gram branch costs at serving time: S1 (bench/load.sh) against a Q1 model with the
# branch and against the same model without it, one after the other in one run, and the ratio.
# Prints figures; asserts nothing.
#
#   bash bench/ngram_cost.sh            # S1 30 s each; S1_DURATION=10s for a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${VOC_DATA:-$PWD/../shared/data/airline}"
VOC="$(bash scripts/setup.sh | tail -1)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
declare -A RPS
for arm in with without; do
  flags=()
  [ "$arm" = without ] && flags=(--no-ngrams)
  "$VOC" train --train "$DATA/train.jsonl" --valid "$DATA/valid.jsonl" --tasks sentiment,reason \
    --target-task sentiment --no-association --epochs 1 --seed 13 --store "$WORK/$arm" "${flags[@]}" \
    >/dev/null 2>"$WORK/train_$arm.log"
  echo "== S1 with the model $arm the n-gram branch"
  VOC_BENCH_STORE="$WORK/$arm" S3_DURATION="${S3_DURATION:-5s}" bash bench/load.sh | tee "$WORK/load_$arm.txt"
  RPS[$arm]="$(awk '/^requests_per_s/ {print $2; exit}' "$WORK/load_$arm.txt")"
done
python3 -c "import sys; w, wo = map(float, sys.argv[1:]); print(f'== n-gram branch at serving: {w:.1f} req/s with, {wo:.1f} without: {100 * w / wo:.1f} % of the requests/s without it')" "${RPS[with]}" "${RPS[without]}"
