#!/usr/bin/env bash
# The test command: sets up the toolchain, makes sure Postgres is reachable, runs every test,
# then the containers' test (docker/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
# schemathesis (tests/openapi_contract.rs) in a venv of its own, reused when present.
VOC_SCHEMATHESIS="$(bash scripts/tools.sh)"
export VOC_SCHEMATHESIS
# chromium and chromedriver for the pages' browser tests (tests/ui_browser.rs).
bash scripts/browser.sh
source scripts/env.sh
source scripts/postgres.sh
# Tests need Postgres: DATABASE_URL, else the usual local server, else a private one.
if [ -z "${DATABASE_URL:-}" ]; then
  if (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
  else
    ensure_database
  fi
fi
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test -- --test-threads=2 "$@"
# The containers, end to end (docker/test.sh: builds the image, runs docker/compose.yaml).
# VOC_SKIP_DOCKER_TEST=1 leaves it out, e.g. on a machine where Docker cannot run; it is
# never skipped silently.
if [ "${VOC_SKIP_DOCKER_TEST:-0}" = 1 ]; then
  echo "test: docker/test.sh skipped (VOC_SKIP_DOCKER_TEST=1)" >&2
else
  bash docker/test.sh
fi
