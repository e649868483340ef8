#!/usr/bin/env bash
# The test command: sets up the toolchain, makes sure Postgres is reachable, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
source scripts/env.sh
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test -- --test-threads=2 "$@"
