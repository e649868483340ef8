#!/usr/bin/env bash
# The trust report (issue 9, part 3): hostile requests, a soak, faults under load and the
# redaction figures, against the real `voc serve` on a private PostgreSQL this script starts
# (so it can restart it). Prints what it measured; exits 1 when a check it reports fails.
#
#   bash bench/trust.sh                         # the full report (a 10-minute soak)
#   TRUST_SOAK_S=60 bash bench/trust.sh         # a shorter soak
#   TRUST_SKIP=soak,disk bash bench/trust.sh    # leave parts out (hostile,soak,pg,kill,disk,redaction)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
SOAK_S="${TRUST_SOAK_S:-600}"
SKIP=",${TRUST_SKIP:-},"
CK="trust-classify-key"
AK="trust-admin-key"

VOC="$(bash scripts/setup.sh | tail -1)"
source scripts/env.sh
source bench/wrk.sh
ensure_wrk

# A private cluster of our own in a folder the postgres user can reach: the faults restart it.
WORK="$(mktemp -d /tmp/voc-trust.XXXXXX)"
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  mountpoint -q "$WORK/small" 2>/dev/null && umount "$WORK/small"
  if [ -n "${PG_BIN:-}" ] && [ -f "$WORK/pg/db/PG_VERSION" ]; then
    pg_as "$PG_BIN/pg_ctl" -D "$WORK/pg/db" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
unset DATABASE_URL
source scripts/postgres.sh
VOC_PGDATA="$WORK/pg" ensure_database
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
pg_as() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_restart() { pg_as "$PG_BIN/pg_ctl" -D "$WORK/pg/db" -m fast -w restart >/dev/null; }
sql() { psql "$DATABASE_URL" -tAc "$1"; }

# The demo model, trained once into bench/out/trust_store and copied for each server.
TEMPLATE="$ROOT/bench/out/trust_store"
if ! ls "$TEMPLATE"/*/model.json >/dev/null 2>&1; then
  echo "trust: training the demo model into $TEMPLATE (once)" >&2
  "$VOC" train --train tests/fixtures/demo_train.jsonl --valid tests/fixtures/demo_test.jsonl \
    --store "$TEMPLATE" --epochs 2 >&2
fi
"$VOC" import --database-url "$DATABASE_URL" tests/fixtures/demo_train.jsonl >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# start_server NAME STORE [ARGS...]: starts `voc serve`, waits until ready; sets PORT_<NAME>, PID_<NAME>.
start_server() {
  local name="$1" store="$2"; shift 2
  local port; port="$(free_port)"
  RUST_LOG="${RUST_LOG:-warn}" VOC_FINETUNE_EPOCHS="${EPOCHS:-1}" "$VOC" serve --bind "127.0.0.1:$port" --store "$store" \
    --classify-api-keys "$CK" --admin-api-keys "$AK" --retrain-min-labels 1000000 \
    --learning-poll-ms 500 --gate-target-margin 1 --gate-other-margin 1 \
    "$@" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 150); do
    curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -sf "http://127.0.0.1:$port/ready" >/dev/null || { tail -20 "$WORK/$name.log" >&2; exit 1; }
  printf -v "PORT_$name" '%s' "$port"
  printf -v "PID_$name" '%s' "$pid"
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
post() { curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $AK" -H 'Content-Type: application/json' -d "$3" "http://127.0.0.1:$1$2"; }
run_state() { sql "SELECT state FROM training_runs WHERE id = $1"; }
wait_run_state() { # id states-regex limit_s
  local t=0
  until run_state "$1" | grep -qE "$2"; do
    sleep 1; t=$((t + 1))
    [ "$t" -ge "$3" ] && { echo "timeout"; return; }
  done
  run_state "$1"
}
request_run() { curl -s -H "X-API-Key: $AK" -X POST "http://127.0.0.1:$1/training-runs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["run"]["id"])'; }

python3 - "$ROOT/tests/fixtures/demo_test.jsonl" "$WORK" <<'PY'
import json, sys
texts = [json.loads(l)["text"] for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
with open(f"{sys.argv[2]}/single.txt", "w") as f:
    for t in texts:
        f.write(json.dumps({"text": t}) + "\n")
PY
# load NAME PORT CONCURRENCY DURATION [DELAY_MS]: wrk with the classify script; ids of 2xx answers kept.
load() {
  VOC_BENCH_KEY="$CK" VOC_BENCH_BODIES="$WORK/single.txt" VOC_BENCH_IDS="$WORK/$1.ids" \
    VOC_BENCH_DELAY_MS="${5:-}" VOC_BENCH_DELAY_FILE="${6:-}" wrk -t2 -c"$3" -d"$4" --timeout 10s -s bench/classify.lua \
    "http://127.0.0.1:$2" >"$WORK/$1.out" 2>&1
}
answered() { awk '$1=="2xx_responses" {print $2}' "$WORK/$1.out"; }
total() { awk '/requests in/ {print $1}' "$WORK/$1.out"; }
rps() { awk '$1=="requests_per_s" {print $2}' "$WORK/$1.out"; }
missing_rows() {
  cat "$WORK/$1".ids.* | grep -E '^[0-9a-f-]{36}$' >"$WORK/$1.answered" || true
  psql "$DATABASE_URL" -qtA -v ON_ERROR_STOP=1 \
    -c "CREATE TEMP TABLE answered (id uuid)" \
    -c "\\copy answered FROM '$WORK/$1.answered'" \
    -c "SELECT count(*) FROM answered a WHERE NOT EXISTS (SELECT 1 FROM predictions p WHERE p.transcript_id = a.id)"
}
FAILED=0
check() { if [ "$1" = ok ]; then echo "  check: $2: ok"; else echo "  check: $2: FAILED"; FAILED=1; fi; }

echo "== voc trust report: commit $(git rev-parse --short HEAD), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(date -u +%FT%TZ)"
cp -r "$TEMPLATE" "$WORK/store_a"
start_server A "$WORK/store_a"
load peak "$PORT_A" 64 15s
PEAK="$(rps peak)"
echo "== peak: single POST /classify, demo model, concurrency 64, 15 s: $PEAK requests/s, $(tail -n +1 "$WORK/peak.out" | awk '$1=="latency_ms"')"

if [[ "$SKIP" != *,hostile,* ]]; then
  echo "== bad input: hostile requests (status, rows stored in transcripts + labels)"
  if python3 bench/hostile.py 127.0.0.1 "$PORT_A" "$DATABASE_URL" "$CK" "$AK"; then
    check ok "no rejected request stored anything, and the server still answers"
  else
    check failed "no rejected request stored anything, and the server still answers"
  fi
fi

if [[ "$SKIP" != *,soak,* ]]; then
  RATE="$(python3 -c "print(round(0.8 * $PEAK))")"
  # The peak's 64 connections, each waiting between requests (fewer connections make smaller
  # batches, whose peak is lower); the wait is calibrated by a 10 s probe (a connection's
  # cycle is its wait plus the answer's latency).
  DELAY="$(python3 -c "print(max(1, round(64 * 1000 / $RATE)))")"
  # Twice: the latency, and so the cycle, grows with the rate.
  for _ in 1 2; do
    load probe "$PORT_A" 64 10s "$DELAY"
    DELAY="$(python3 -c "print(max(1, round($DELAY - (64 / $(rps probe) - 64 / $RATE) * 1000)))")"
  done
  echo "== soak: $SOAK_S s at 80 % of the peak ($RATE requests/s asked: 64 connections, ${DELAY} ms between requests after a probe at $(rps probe)/s, then paced every 5 s so the average holds), feedback throughout, one training run in the middle"
  echo "$DELAY" >"$WORK/soak.delay"
  load soak "$PORT_A" 64 "${SOAK_S}s" "$DELAY" "$WORK/soak.delay" &
  LOAD=$!
  python3 bench/pace.py "$WORK/soak.ids" "$WORK/soak.delay" "$RATE" 64 "$SOAK_S" >"$WORK/pace.out" 2>&1 &
  PIDS+=("$!")
  # RSS every 30 s, to tell a step at the training run from a steady climb.
  ( while kill -0 "$LOAD" 2>/dev/null; do rss_kb "$PID_A" >>"$WORK/rss.series"; sleep 30; done ) &
  PIDS+=("$!")
  sleep 60
  RSS1="$(rss_kb "$PID_A")"
  # Feedback for answered transcripts, about 5 a second, until the load ends.
  python3 - "$PORT_A" "$AK" "$WORK" <<'PY' >"$WORK/feedback.out" 2>&1 &
import glob, json, random, sys, time, urllib.request, urllib.error
port, key, work = sys.argv[1], sys.argv[2], sys.argv[3]
sent = {}
while True:
    ids = []
    for f in glob.glob(f"{work}/soak.ids.*"):
        ids += [l.strip() for l in open(f) if len(l.strip()) == 36]
    if not ids:
        time.sleep(1); continue
    tid = random.choice(ids)
    body = json.dumps({"transcript_id": tid, "labels": {"sentiment": random.choice(["positive", "negative"])}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/feedback", body,
                                 {"Content-Type": "application/json", "X-API-Key": key})
    try:
        code = urllib.request.urlopen(req, timeout=10).status
    except urllib.error.HTTPError as e:
        code = e.code
    except Exception:
        code = "error"
    sent[code] = sent.get(code, 0) + 1
    print(json.dumps(sent), flush=True)
    time.sleep(0.2)
PY
  FEEDBACK=$!
  PIDS+=("$FEEDBACK")
  sleep $(( SOAK_S / 2 > 60 ? SOAK_S / 2 - 60 : 1 ))
  RUN="$(request_run "$PORT_A")"
  wait "$LOAD"
  kill "$FEEDBACK" 2>/dev/null || true
  RSS2="$(rss_kb "$PID_A")"
  SOAK_TOTAL="$(total soak)"; SOAK_OK="$(answered soak)"
  echo "  requests $SOAK_TOTAL at $(rps soak)/s ($(python3 -c "print(round(100 * $(rps soak) / $PEAK, 1))") % of the peak), non_2xx $((SOAK_TOTAL - SOAK_OK)), $(awk '$1=="latency_ms"' "$WORK/soak.out")"
  echo "  pacing (every 5 s: answers so far, wait): $(awk 'NR % 12 == 0 {printf "%s%s s %s wait %s ms", (n++ ? ", " : ""), $1, $5, $9}' "$WORK/pace.out")"
  echo "  feedback answers by status: $(tail -1 "$WORK/feedback.out")"
  echo "  training run $RUN: $(wait_run_state "$RUN" 'promoted|rejected|failed|superseded|cancelled' 600) ($(sql "SELECT reason FROM training_runs WHERE id = $RUN"))"
  MISSING="$(missing_rows soak)"
  echo "  answered transcripts without their prediction row: $MISSING"
  echo "  RSS after the first minute $RSS1 kB, at the end $RSS2 kB ($(python3 -c "print(f'{100 * ($RSS2 - $RSS1) / $RSS1:+.1f}')") %)"
  echo "  RSS every 30 s from the start (MB): $(awk '{printf "%s%d", (NR > 1 ? " " : ""), $1 / 1024}' "$WORK/rss.series")"
  [ "$((SOAK_TOTAL - SOAK_OK))" = 0 ] && check ok "0 non-2xx" || check failed "0 non-2xx"
  python3 -c "import sys; sys.exit(0 if $(rps soak) >= 0.79 * $PEAK else 1)" && check ok "average rate at 80 % of the peak (±1)" || check failed "average rate at 80 % of the peak (±1)"
  [ "$MISSING" = 0 ] && check ok "every answered transcript has its row" || check failed "every answered transcript has its row"
  python3 -c "import sys; sys.exit(0 if $RSS2 <= 1.1 * $RSS1 else 1)" && check ok "RSS within 10 %" || check failed "RSS within 10 %"
fi

if [[ "$SKIP" != *,pg,* ]]; then
  echo "== fault: Postgres restarted under load (20 s at concurrency 32, restart at 5 s)"
  load pgfault "$PORT_A" 32 20s &
  LOAD=$!
  sleep 5
  pg_restart
  echo "  postgres restarted at $(date -u +%T)"
  wait "$LOAD"
  T="$(total pgfault)"; OK="$(answered pgfault)"
  MISSING="$(missing_rows pgfault)"
  AFTER="$(curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $CK" -H 'Content-Type: application/json' -d '{"text":"after the restart"}' "http://127.0.0.1:$PORT_A/classify")"
  echo "  requests $T: 2xx $OK, non-2xx $((T - OK)) ($(grep -E 'Non-2xx|Socket errors' "$WORK/pgfault.out" | xargs || true)); 2xx without their row: $MISSING; classify afterwards (same process): $AFTER"
  [ "$MISSING" = 0 ] && check ok "no 2xx without its row" || check failed "no 2xx without its row"
  [ "$AFTER" = 200 ] && check ok "recovered without a restart of voc" || check failed "recovered without a restart of voc"
fi

if [[ "$SKIP" != *,kill,* ]]; then
  echo "== fault: kill -9 of the training replica mid-run (two replicas, one database, one store)"
  # Longer runs, so that the kill lands mid-run: A restarted with them, and B.
  kill "$PID_A"; wait "$PID_A" 2>/dev/null || true
  EPOCHS=20 start_server A "$WORK/store_a"
  EPOCHS=20 start_server B "$WORK/store_a"
  ACTIVE="$(sql "SELECT version FROM model_versions WHERE active")"
  RUN="$(request_run "$PORT_A")"
  wait_run_state "$RUN" running 120 >/dev/null
  OWNER_PID="$(sql "SELECT owner FROM training_runs WHERE id = $RUN" | cut -d: -f2)"
  if [ "$OWNER_PID" = "$PID_A" ]; then VICTIM=A; SURVIVOR_PORT="$PORT_B"; else VICTIM=B; SURVIVOR_PORT="$PORT_A"; fi
  load killfault "$SURVIVOR_PORT" 16 20s &
  LOAD=$!
  sleep 3
  echo "  run $RUN before the kill: $(run_state "$RUN")"
  kill -9 "$OWNER_PID"
  echo "  replica $VICTIM (pid $OWNER_PID) killed while training run $RUN"
  STATE="$(wait_run_state "$RUN" 'promoted|rejected|failed|superseded|cancelled' 120)"
  wait "$LOAD"
  SERVED="$(curl -s -H "X-API-Key: $CK" -H 'Content-Type: application/json' -d '{"text":"still there?"}' "http://127.0.0.1:$SURVIVOR_PORT/classify" | python3 -c 'import json,sys; print(json.load(sys.stdin)["model_version"])')"
  T="$(total killfault)"; OK="$(answered killfault)"
  echo "  run $RUN: $STATE ($(sql "SELECT reason FROM training_runs WHERE id = $RUN")); the survivor answered $OK of $T requests 2xx meanwhile, serves $SERVED (active before: $ACTIVE)"
  [[ "$STATE" =~ failed|promoted|rejected ]] && check ok "the run was finished or marked failed" || check failed "the run was finished or marked failed"
  [ "$SERVED" = "$(sql "SELECT version FROM model_versions WHERE active")" ] && check ok "the survivor serves the active version" || check failed "the survivor serves the active version"
  [ "$T" = "$OK" ] && check ok "the survivor answered every request 2xx" || check failed "the survivor answered every request 2xx"
fi

if [[ "$SKIP" != *,disk,* ]]; then
  echo "== fault: the model store's disk full while a run writes its version"
  # Alone on the database: no other replica's scheduler may take this run.
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  mkdir -p "$WORK/small"
  USED_KB="$(du -sk "$TEMPLATE" | cut -f1)"
  if mount -t tmpfs -o size=$(( USED_KB + 256 ))k tmpfs "$WORK/small" 2>/dev/null; then
    cp -r "$TEMPLATE"/. "$WORK/small/"
    BEFORE_VERSIONS="$(ls -A "$WORK/small" | sort | xargs)"
    start_server D "$WORK/small"
    RUN="$(request_run "$PORT_D")"
    STATE="$(wait_run_state "$RUN" 'promoted|rejected|failed|superseded|cancelled' 300)"
    AFTER_VERSIONS="$(ls -A "$WORK/small" | sort | xargs)"
    SERVED="$(curl -s -H "X-API-Key: $CK" -H 'Content-Type: application/json' -d '{"text":"disk full"}' "http://127.0.0.1:$PORT_D/classify" | python3 -c 'import json,sys; print(json.load(sys.stdin)["model_version"])')"
    echo "  store on a $(( USED_KB + 256 )) kB tmpfs; run $RUN: $STATE ($(sql "SELECT reason FROM training_runs WHERE id = $RUN"))"
    echo "  versions before: $BEFORE_VERSIONS; after: $AFTER_VERSIONS; serving $SERVED"
    [ "$STATE" = failed ] && check ok "the run failed cleanly" || check failed "the run failed cleanly"
    [ "$BEFORE_VERSIONS" = "$AFTER_VERSIONS" ] && check ok "no half-written version left in the store" || check failed "no half-written version left in the store"
  else
    echo "  skipped: cannot mount a small tmpfs here (needs root)"
  fi
fi

if [[ "$SKIP" != *,redaction,* ]]; then
  echo "== redaction: tests/fixtures/pii_sentences.jsonl"
  "$VOC" redact --eval tests/fixtures/pii_sentences.jsonl
fi
echo "== trust report done: $([ "$FAILED" = 0 ] && echo 'every check passed' || echo 'SOME CHECKS FAILED')"
exit "$FAILED"
