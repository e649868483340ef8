#!/usr/bin/env bash
# The learning-from-feedback replay and serving protocol S2 (see bench/replay.py for the
# protocol) on the airline data from ../shared/data, with a fresh Postgres database.
#
#   bash bench/replay.sh                        # trains the starting model into a temp store
#   VOC_REPLAY_STORE=DIR bash bench/replay.sh   # keep the store (and reuse its starting model)
#   REPLAY_ARGS="--batches 4 --train-args '--epochs 3 --min-steps 1500' --serve-args '--finetune-epochs 2'"
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
DATA="${VOC_DATA:-$ROOT/../shared/data/airline}"
VOC="$(bash scripts/setup.sh | tail -1)"
source scripts/env.sh
source scripts/postgres.sh
ensure_database
source bench/wrk.sh
ensure_wrk

WORK="$(mktemp -d)"
STORE="${VOC_REPLAY_STORE:-$WORK/store}"
DB="voc_replay_$$"
BENCH_URL="${DATABASE_URL%/*}/$DB"
cleanup() {
  psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
psql "$DATABASE_URL" -qc "CREATE DATABASE $DB" >/dev/null

echo "== voc replay: commit $(git rev-parse --short HEAD), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(date -u +%FT%TZ)"
# REPLAY_ARGS is split like a shell would (quotes kept) but never evaluated; arguments to
# this script are passed on as they are.
mapfile -d '' -t EXTRA < <(python3 -c 'import shlex, sys; sys.stdout.write("".join(a + "\0" for a in shlex.split(sys.argv[1])))' "${REPLAY_ARGS:-}")
python3 bench/replay.py --voc "$VOC" --data "$DATA" --database-url "$BENCH_URL" --store "$STORE" --work "$WORK" "${EXTRA[@]}" "$@"
