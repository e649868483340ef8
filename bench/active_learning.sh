#!/usr/bin/env bash
# Does the review queue pay off? The active-learning replay of issue 11 (see
# bench/active_learning.py) on the airline data from ../shared/data: uncertain against random
# sampling, retraining after every step as the service does.
#
#   bash bench/active_learning.sh                       # 3 seeds, to 3,000 labels
#   AL_ARGS="--seeds 1 --checkpoints 500,1000" bash bench/active_learning.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${VOC_DATA:-$PWD/../shared/data/airline}"
VOC="$(bash scripts/setup.sh | tail -1)"
source scripts/env.sh
source scripts/postgres.sh
ensure_database
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
echo "== voc active-learning replay: commit $(git rev-parse --short HEAD), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(date -u +%FT%TZ)"
mapfile -d '' -t EXTRA < <(python3 -c 'import shlex, sys; sys.stdout.write("".join(a + "\0" for a in shlex.split(sys.argv[1])))' "${AL_ARGS:-}")
python3 bench/active_learning.py --voc "$VOC" --data "$DATA" --database-url "$DATABASE_URL" --work "$WORK" "${EXTRA[@]}" "$@"
