#!/usr/bin/env bash
# What the n-gram branch (or, with --no-tfidf, the TF-IDF companion) costs at serving time:
# S1 (bench/load.sh) against a Q1 model with it and against the same model without it, one
# after the other in one run, and the ratio. Prints figures; asserts nothing.
#
#   bash bench/ngram_cost.sh              # the n-gram branch; S1 30 s each
#   bash bench/ngram_cost.sh --no-tfidf   # the TF-IDF companion; S1_DURATION=10s for a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
OFF="${1:---no-ngrams}"
case "$OFF" in
  --no-ngrams) WHAT="the n-gram branch" ;;
  --no-tfidf) WHAT="the TF-IDF companion" ;;
  *) echo "usage: bash bench/ngram_cost.sh [--no-ngrams|--no-tfidf]" >&2; exit 2 ;;
esac
DATA="${VOC_DATA:-$PWD/../shared/data/airline}"
VOC="$(bash scripts/setup.sh | tail -1)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
declare -A RPS
for arm in with without; do
  flags=()
  [ "$arm" = without ] && flags=("$OFF")
  "$VOC" train --train "$DATA/train.jsonl" --valid "$DATA/valid.jsonl" --tasks sentiment,reason \
    --target-task sentiment --no-association --epochs 1 --seed 13 --store "$WORK/$arm" "${flags[@]}" \
    >/dev/null 2>"$WORK/train_$arm.log"
  echo "== S1 with the model $arm $WHAT"
  VOC_BENCH_STORE="$WORK/$arm" S3_DURATION="${S3_DURATION:-5s}" bash bench/load.sh | tee "$WORK/load_$arm.txt"
  RPS[$arm]="$(awk '/^requests_per_s/ {print $2; exit}' "$WORK/load_$arm.txt")"
done
python3 -c "import sys; w, wo = map(float, sys.argv[1:3]); print(f'== {sys.argv[3]} at serving: {w:.1f} req/s with, {wo:.1f} without: {100 * w / wo:.1f} % of the requests/s without it')" "${RPS[with]}" "${RPS[without]}" "$WHAT"
