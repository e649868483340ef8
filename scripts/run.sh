#!/usr/bin/env bash
# THE run command: builds voc, makes sure Postgres is there (DATABASE_URL, or a private one in
# .pgdata/), trains the demo model if model_store/ has no version, then serves it.
# Every `voc serve` flag can also be given here, or as its environment variable.
set -euo pipefail
cd "$(dirname "$0")/.."
VOC="$(bash scripts/setup.sh | tail -1)"
source scripts/env.sh
source scripts/postgres.sh
ensure_database
export VOC_STORE="${VOC_STORE:-model_store}"
if ! ls "$VOC_STORE"/*/model.json >/dev/null 2>&1; then
  echo "run: $VOC_STORE has no model version; training the demo model (a minute or two, once)" >&2
  "$VOC" train --train tests/fixtures/demo_train.jsonl --valid tests/fixtures/demo_test.jsonl \
    --store "$VOC_STORE" >&2
fi
exec "$VOC" serve "$@"
