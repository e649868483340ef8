#!/usr/bin/env bash
# Serving benchmarks S1 and S3 (see BENCHMARKS.md): the real `voc serve` on loopback with a
# fresh Postgres database and the Q1 model, loaded by wrk. Prints figures; asserts nothing
# about time. Checks afterwards that every 2xx answer has its prediction row in Postgres.
#
#   bash bench/load.sh                      # trains the Q1 model once into bench/out/q1_store
#   VOC_BENCH_STORE=DIR bash bench/load.sh  # reuse a store that holds a Q1 version
#   S1_DURATION=30s S1_CONCURRENCY=64 S3_DURATION=20s S3_CONCURRENCY=8 SERVE_ARGS="--max-batch-size 32"
#   S2_DURATION=0 bash bench/load.sh        # leave out S2 (S1 while a fine-tuning run trains)
#   PEER=0 bash bench/load.sh               # leave out S4 (S1 and S3 against the Python peer)
# S4 stops voc, starts bench/peer/voc_peer.py (FastAPI + PyTorch, PEER_WORKERS uvicorn workers,
# default the CPUs) on the same model version, checks that it answers as voc does, runs S1 and S3
# against it and prints both services side by side with their ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
DATA="${VOC_DATA:-$ROOT/../shared/data/airline}"
S1_DURATION="${S1_DURATION:-30s}"
S1_CONCURRENCY="${S1_CONCURRENCY:-64}"
S3_DURATION="${S3_DURATION:-20s}"
S3_CONCURRENCY="${S3_CONCURRENCY:-8}"
S2_DURATION="${S2_DURATION:-30s}"
PEER="${PEER:-1}"
PEER_WORKERS="${PEER_WORKERS:-$(nproc)}"
STORE="${VOC_BENCH_STORE:-$ROOT/bench/out/q1_store}"

VOC="$(bash scripts/setup.sh | tail -1)"
source scripts/env.sh
source scripts/postgres.sh
ensure_database

source bench/wrk.sh
ensure_wrk

if ! ls "$STORE"/*/model.json >/dev/null 2>&1; then
  echo "load: training the Q1 model into $STORE (a few minutes, once)" >&2
  "$VOC" train --train "$DATA/train.jsonl" --valid "$DATA/valid.jsonl" --tasks sentiment,reason \
    --store "$STORE" --epochs 3 >&2
fi

WORK="$(mktemp -d)"
DB="voc_bench_$$"
BASE_URL="${DATABASE_URL%/*}"
BENCH_URL="$BASE_URL/$DB"
SERVER_PID=""
PEER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  [ -n "$PEER_PID" ] && kill "$PEER_PID" 2>/dev/null && wait "$PEER_PID" 2>/dev/null
  psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
psql "$DATABASE_URL" -qc "CREATE DATABASE $DB" >/dev/null

# Request bodies from the airline test texts (kept in a temp folder, never in the repo).
python3 - "$DATA/test.jsonl" "$WORK" <<'PY'
import json, sys
texts = [json.loads(l)["text"] for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
with open(f"{sys.argv[2]}/single.txt", "w") as f:
    for t in texts:
        f.write(json.dumps({"text": t, "call_id": "bench"}) + "\n")
with open(f"{sys.argv[2]}/batch64.txt", "w") as f:
    for i in range(0, len(texts) - 64, 64):
        f.write(json.dumps({"items": [{"text": t} for t in texts[i:i + 64]]}) + "\n")
PY

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
RUST_LOG="${RUST_LOG:-warn}" DATABASE_URL="$BENCH_URL" "$VOC" serve --bind "127.0.0.1:$PORT" \
  --store "$STORE" --max-items-per-request 64 --retrain-min-labels 100000000 ${SERVE_ARGS:-} >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null || { cat "$WORK/serve.log" >&2; exit 1; }
VERSION="$(curl -s "http://127.0.0.1:$PORT/models/active" | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')"

# CPU seconds (user+system) so far: the whole machine, a process, one named thread, all postgres.
TICK="$(getconf CLK_TCK)"
cpu_machine() { awk -v t="$TICK" '/^cpu / {print ($2+$3+$4+$7+$8)/t}' /proc/stat; }
cpu_proc() { awk -v t="$TICK" '{sub(/.*\) /, ""); print ($12+$13)/t}' "/proc/$1/stat"; }
cpu_threads() { # pid name-prefix: every thread whose name starts with it
  local total=0 d
  for d in /proc/"$1"/task/*; do
    case "$(cat "$d/comm")" in
      "$2"*) total="$total+$(awk -v t="$TICK" '{sub(/.*\) /, ""); print ($12+$13)/t}' "$d/stat")" ;;
    esac
  done
  python3 -c "print($total)"
}
cpu_postgres() {
  local total=0 pid
  for pid in $(pgrep -x postgres); do total="$total+$(cpu_proc "$pid" 2>/dev/null || echo 0)"; done
  python3 -c "print($total)"
}
# The serving process and its children (uvicorn's workers are children of its master).
cpu_server() {
  local total=0 pid
  for pid in "$SERVER_PID" $(pgrep -P "$SERVER_PID"); do total="$total+$(cpu_proc "$pid" 2>/dev/null || echo 0)"; done
  python3 -c "print($total)"
}
cpu_snapshot() { echo "$(cpu_machine) $(cpu_server) $(cpu_threads "$SERVER_PID" voc-inference) $(cpu_postgres)"; }
cpu_report() { # before after wall_seconds [service name]; prints the line and keeps the server's share in $WORK/cpu
  python3 - "$1" "$2" "$3" "${4:-voc serve}" "$WORK/cpu" <<'PY'
import sys
b = [float(x) for x in sys.argv[1].split()]; a = [float(x) for x in sys.argv[2].split()]; wall = float(sys.argv[3])
d = [y - x for x, y in zip(b, a)]
machine, server, inference, pg = d
split = (f" (inference threads {inference/wall:.2f}, http+db tasks {(server-inference)/wall:.2f})"
         if sys.argv[4] == "voc serve" else " (every worker process)")
print(f"cpu (cores busy on average over {wall:.0f} s): machine {machine/wall:.2f}, {sys.argv[4]} {server/wall:.2f}{split}, "
      f"postgres {pg/wall:.2f}, other (wrk, kernel) {(machine-server-pg)/wall:.2f}")
open(sys.argv[5], "w").write(f"{machine/wall:.2f} {server/wall:.2f} {pg/wall:.2f}")
PY
}
ROWS_TABLE=predictions # the table each answer's row is looked for in (the peer has its own)
ROWS_ID=transcript_id
count_predictions() { psql "$BENCH_URL" -tAc "SELECT count(*) FROM $ROWS_TABLE"; }
run_wrk() { # name bodies concurrency duration
  VOC_BENCH_BODIES="$2" VOC_BENCH_IDS="$WORK/$1.ids" wrk -t2 -c"$3" -d"$4" --timeout 10s -s bench/classify.lua \
    "http://127.0.0.1:$PORT" >"$WORK/$1.out" 2>&1
  grep -E "Non-2xx|Socket errors" "$WORK/$1.out" || true
}
# Transcript ids of 2xx answers (written by classify.lua) that have no prediction row.
missing_rows() {
  cat "$WORK/$1".ids.* >"$WORK/$1.answered"
  psql "$BENCH_URL" -qtA -v ON_ERROR_STOP=1 \
    -c "CREATE TEMP TABLE answered (id uuid)" \
    -c "\\copy answered FROM '$WORK/$1.answered'" \
    -c "SELECT count(*) || ' of ' || (SELECT count(*) FROM answered) FROM answered a
        WHERE NOT EXISTS (SELECT 1 FROM $ROWS_TABLE p WHERE p.$ROWS_ID = a.id)"
}
field() { awk -v k="$2" '$1==k {print $0}' "$WORK/$1.out"; }

echo "== voc serve load test: commit $(git rev-parse --short HEAD), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), model $VERSION, $(date -u +%FT%TZ)"
# S1 against the server on $PORT: prints its figures and keeps "requests/s p99 cores" in $WORK/NAME.row.
s1() { # name service
  local before after cpu_before cpu_after t0 t1 ok total
  echo "== S1 ($2): single POST /classify, airline/test texts, concurrency $S1_CONCURRENCY, $S1_DURATION"
  before="$(count_predictions)"
  cpu_before="$(cpu_snapshot)"; t0="$(date +%s.%N)"
  run_wrk "$1" "$WORK/single.txt" "$S1_CONCURRENCY" "$S1_DURATION"
  cpu_after="$(cpu_snapshot)"; t1="$(date +%s.%N)"
  after="$(count_predictions)"
  ok="$(field "$1" 2xx_responses | awk '{print $2}')"
  total="$(awk '/requests in/ {print $1}' "$WORK/$1.out")"
  field "$1" requests_per_s
  field "$1" latency_ms
  echo "non_2xx $((total - ok)) (of $total)"
  cpu_report "$cpu_before" "$cpu_after" "$(python3 -c "print($t1 - $t0)")" "$2"
  echo "postgres: $((after - before)) prediction rows for $ok 2xx answers; answered transcripts without a prediction row: $(missing_rows "$1")"
  echo "$(field "$1" requests_per_s | awk '{print $2}') $(field "$1" latency_ms | awk '{print $7}') $(cat "$WORK/cpu")" >"$WORK/$1.row"
}
# S3 against the server on $PORT; keeps "texts/s p99 cores" in $WORK/NAME.row.
s3() { # name service
  local before after cpu_before cpu_after t0 t1 ok total rps
  echo "== S3 ($2): POST /classify with 64 texts per request, concurrency $S3_CONCURRENCY, $S3_DURATION"
  before="$(count_predictions)"
  cpu_before="$(cpu_snapshot)"; t0="$(date +%s.%N)"
  run_wrk "$1" "$WORK/batch64.txt" "$S3_CONCURRENCY" "$S3_DURATION"
  cpu_after="$(cpu_snapshot)"; t1="$(date +%s.%N)"
  after="$(count_predictions)"
  ok="$(field "$1" 2xx_responses | awk '{print $2}')"
  total="$(awk '/requests in/ {print $1}' "$WORK/$1.out")"
  rps="$(field "$1" requests_per_s | awk '{print $2}')"
  field "$1" latency_ms
  echo "requests_per_s $rps texts_per_s $(python3 -c "print(round($rps*64, 1))")"
  echo "non_2xx $((total - ok)) (of $total)"
  cpu_report "$cpu_before" "$cpu_after" "$(python3 -c "print($t1 - $t0)")" "$2"
  echo "postgres: $((after - before)) prediction rows for $((ok * 64)) texts in 2xx answers; answered transcripts without a prediction row: $(missing_rows "$1")"
  echo "$(python3 -c "print(round($rps*64, 1))") $(field "$1" latency_ms | awk '{print $7}') $(cat "$WORK/cpu")" >"$WORK/$1.row"
}

s1 s1 "voc serve"
s3 s3 "voc serve"

if [ "$S2_DURATION" != 0 ]; then
  echo "== S2: S1 while a fine-tuning run trains on the 10,092 labeled airline train rows, concurrency $S1_CONCURRENCY, $S2_DURATION"
  DATABASE_URL="$BENCH_URL" "$VOC" import "$DATA/train.jsonl" --tasks sentiment,reason >"$WORK/import.log" 2>&1
  RUN="$(curl -s -X POST "http://127.0.0.1:$PORT/training-runs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["run"]["id"])')"
  run_state() { psql "$BENCH_URL" -tAc "SELECT state FROM training_runs WHERE id = $RUN"; }
  for _ in $(seq 1 240); do [ "$(run_state)" = running ] && break; sleep 0.5; done
  # The run reads its snapshot first; measure once it trains (its first progress row).
  for _ in $(seq 1 240); do
    [ -n "$(psql "$BENCH_URL" -tAc "SELECT progress FROM training_runs WHERE id = $RUN AND progress IS NOT NULL")" ] && break
    sleep 0.5
  done
  echo "training run $RUN: $(run_state)"
  cpu_before="$(cpu_snapshot)"; train_before="$(cpu_threads "$SERVER_PID" voc-training)"; t0="$(date +%s.%N)"
  run_wrk s2 "$WORK/single.txt" "$S1_CONCURRENCY" "$S2_DURATION"
  cpu_after="$(cpu_snapshot)"; train_after="$(cpu_threads "$SERVER_PID" voc-training)"; t1="$(date +%s.%N)"
  s2_rps="$(field s2 requests_per_s | awk '{print $2}')"
  field s2 requests_per_s
  field s2 latency_ms
  s2_ok="$(field s2 2xx_responses | awk '{print $2}')"
  s2_total="$(awk '/requests in/ {print $1}' "$WORK/s2.out")"
  echo "non_2xx $((s2_total - s2_ok)) (of $s2_total); S2 / S1 requests/s: $(python3 -c "print(round($s2_rps / $(field s1 requests_per_s | awk '{print $2}'), 3))")"
  cpu_report "$cpu_before" "$cpu_after" "$(python3 -c "print($t1 - $t0)")"
  echo "training (voc-training and the libtorch threads it started): $(python3 -c "print(round(($train_after - $train_before) / ($t1 - $t0), 2))") cores busy during S2; run $RUN is $(run_state) after S2"
  echo "answered transcripts without a prediction row: $(missing_rows s2)"
fi

echo "== where the time goes (server metrics, whole run)"
curl -s "http://127.0.0.1:$PORT/metrics" | python3 -c '
import sys, collections
sums = collections.defaultdict(float)
for line in sys.stdin:
    if line.startswith("#"): continue
    name, _, value = line.rpartition(" ")
    for m in ("voc_batch_size", "voc_inference_seconds", "voc_db_write_seconds"):
        if name.startswith(m + "_sum") or name.startswith(m + "_count"):
            sums[name.split("{")[0]] += float(value)
for m in ("voc_batch_size", "voc_inference_seconds", "voc_db_write_seconds"):
    n = sums[m + "_count"]
    if n:
        mean = sums[m + "_sum"] / n
        print(f"{m}: {int(n)} batches, mean {mean*1000:.2f} ms" if "seconds" in m else f"{m}: {int(n)} batches, mean {mean:.1f} texts")
'

if [ "$PEER" != 0 ]; then
  echo "== S4: the same model version served by the Python peer (bench/peer/voc_peer.py, FastAPI + PyTorch, $PEER_WORKERS uvicorn workers, one forward pass per request, asyncpg commit before the answer)"
  kill "$SERVER_PID" && wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  MODEL_DIR="$(cd "$STORE/$VERSION" && pwd)"
  python3 -c 'import json,sys; [print(json.loads(l)["text"].replace("\n", " ")) for l in open(sys.argv[1]).readlines()[:300]]' \
    "$DATA/test.jsonl" >"$WORK/check.txt"
  "$VOC" predict --model "$MODEL_DIR" <"$WORK/check.txt" >"$WORK/check.voc.jsonl"
  bash bench/peer/run_peer.sh --check "$MODEL_DIR" "$WORK/check.voc.jsonl" "$WORK/check.txt"
  PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  bash bench/peer/run_peer.sh "$MODEL_DIR" "$PORT" "$BENCH_URL" "$PEER_WORKERS" >"$WORK/peer.log" 2>&1 &
  PEER_PID=$!
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null || { cat "$WORK/peer.log" >&2; exit 1; }
  SERVER_PID="$(pgrep -f "uvicorn voc_peer:app.*--port $PORT" | head -1)"
  ROWS_TABLE=peer_predictions ROWS_ID=id
  s1 peer_s1 "python peer"
  s3 peer_s3 "python peer"
  echo "== side by side ($(nproc) CPUs, model $VERSION on both; cores: machine / server processes / postgres)"
  python3 - "$WORK" <<'PY'
import sys
w = sys.argv[1]
row = lambda n: [float(x) for x in open(f"{w}/{n}.row").read().split()]
for name, unit in (("s1", "requests/s"), ("s3", "texts/s")):
    v, p = row(name), row("peer_" + name)
    print(f"{name.upper()} {unit:>10}: voc {v[0]:>9,.1f} p99 {v[1]:6.1f} ms cores {v[2]:.2f}/{v[3]:.2f}/{v[4]:.2f} | "
          f"peer {p[0]:>9,.1f} p99 {p[1]:6.1f} ms cores {p[2]:.2f}/{p[3]:.2f}/{p[4]:.2f} | "
          f"voc/peer {v[0]/p[0]:.2f}x, p99 voc/peer {v[1]/p[1]:.2f}")
PY
fi
