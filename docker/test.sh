#!/usr/bin/env bash
# The real test of docker/: builds the image with docker/Dockerfile, runs docker/compose.yaml,
# and checks what an operator relies on:
#   1. classify -> feedback -> the transcript read back with its label;
#   2. the Postgres container restarted under load: 503s, then recovery, and every 2xx answer
#      has its row;
#   3. `down` + `up` keeps transcripts, labels and model versions;
#   4. profile "replicas": a training run on one replica, both replicas then serve the new
#      version; the training replica's container killed mid-run: the other keeps serving (through
#      nginx) and the run is marked failed.
# Starts a Docker engine if none answers (and stops it after), builds local stand-ins for base
# images it cannot pull (docker/standins.sh), keeps all traffic on loopback and the networks
# compose creates, and removes its containers, networks and volumes at the end. Prints the wall
# time of each phase.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${VOC_CACHE:-$HOME/.cache/voc}/docker"
mkdir -p "$CACHE"
export COMPOSE_PROJECT_NAME=voctest
export VOC_PORT="${VOC_TEST_PORT:-18080}" VOC_LB_PORT="${VOC_TEST_LB_PORT:-18090}"
export VOC_PUBLISH_ADDR=127.0.0.1
# The learning loop at test speed: the demo labels are few, so the gate is lenient.
export VOC_LEARNING_POLL_MS=500 VOC_FINETUNE_EPOCHS=2 VOC_EVAL_SHARE=0.2
export VOC_GATE_TARGET_MARGIN=0.2 VOC_GATE_OTHER_MARGIN=0.2 VOC_GATE_MIN_EVAL_ROWS=20
export VOC_RETRAIN_MIN_LABELS=1000000
export VOC_SOURCE_COMMIT="$(git rev-parse HEAD 2>/dev/null || true)"
WORK="$(mktemp -d)"
T0=$SECONDS
PHASE_START=$SECONDS
PHASE=""

phase() {
  [ -n "$PHASE" ] && printf 'docker-test: phase %-28s %4d s\n' "$PHASE" $((SECONDS - PHASE_START))
  PHASE="$1"
  PHASE_START=$SECONDS
  [ -n "$PHASE" ] && echo "docker-test: --- $PHASE"
  return 0
}
fail() {
  echo "docker-test: FAIL: $*" >&2
  exit 1
}

# --- the engine -------------------------------------------------------------------------
STARTED_DOCKERD=""
phase "engine"
if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null || ! command -v docker-compose >/dev/null; then
    apt-get install -y -qq docker.io docker-compose debootstrap >&2
  fi
  dockerd --iptables=false --storage-driver="$(bash docker/storage-driver.sh)" >"$CACHE/dockerd.log" 2>&1 &
  STARTED_DOCKERD=$!
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || fail "dockerd did not start (see $CACHE/dockerd.log)"
fi
if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose -f docker/compose.yaml)
else
  COMPOSE=(docker-compose -f docker/compose.yaml)
fi
echo "docker-test: engine $(docker version -f '{{.Server.Version}}'), storage $(docker info -f '{{.Driver}}'), $("${COMPOSE[@]}" version --short 2>/dev/null || "${COMPOSE[@]}" version | head -1)"

cleanup() {
  local rc=$?
  if [ "$rc" != 0 ]; then
    "${COMPOSE[@]}" --profile replicas logs --tail 40 >&2 2>&1 || true
  fi
  "${COMPOSE[@]}" --profile replicas down -v --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$WORK"
  if [ -n "$STARTED_DOCKERD" ]; then
    kill "$STARTED_DOCKERD" 2>/dev/null || true
    wait "$STARTED_DOCKERD" 2>/dev/null || true
  fi
  echo "docker-test: total $((SECONDS - T0)) s, $([ "$rc" = 0 ] && echo passed || echo FAILED)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Whatever a killed earlier run left.
"${COMPOSE[@]}" --profile replicas down -v --remove-orphans >/dev/null 2>&1 || true

phase "base images"
bash docker/standins.sh

phase "build image"
docker build -q -f docker/Dockerfile -t voc:latest --build-arg VOC_SOURCE_COMMIT="$VOC_SOURCE_COMMIT" . >/dev/null
echo "docker-test: voc:latest is $(docker image inspect -f '{{.Size}}' voc:latest | awk '{printf "%.0f MB", $1/1e6}')"
# vfs keeps a whole copy of the file system for every layer, so each build from a new commit
# leaves several GB behind: remove the earlier builds' binary layers (the untagged build-stage
# ends of other commits, the untagged earlier voc images). The base and dependency layers,
# which the next build reuses, stay.
for image in $(docker images -q -f dangling=true); do
  created_by="$(docker history --no-trunc --format '{{.CreatedBy}}' "$image" | head -1)"
  case "$created_by" in
    *"VOC_SOURCE_COMMIT=$VOC_SOURCE_COMMIT "*) ;;
    *VOC_SOURCE_COMMIT=* | *'CMD ["serve"]'*) docker rmi "$image" >/dev/null 2>&1 || true ;;
  esac
done
echo "docker-test: $(df -h /var/lib/docker 2>/dev/null | awk 'NR == 2 {print $4}') free for Docker after removing earlier builds"

# --- helpers ------------------------------------------------------------------------------
api() { # METHOD PATH [JSON] on the published voc port; prints the body, fails on non-2xx
  local port="${API_PORT:-$VOC_PORT}"
  local body
  body="$(curl -sS --fail-with-body -X "$1" "http://127.0.0.1:$port$2" \
    -H 'content-type: application/json' ${3:+-d "$3"})" || {
    echo "docker-test: $1 $2 answered: $body" >&2
    return 1
  }
  printf '%s\n' "$body"
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
container() { "${COMPOSE[@]}" ps -q "$1"; }
wait_healthy() { # SERVICE...
  local deadline=$((SECONDS + 300))
  for svc in "$@"; do
    while [ "$(docker inspect -f '{{.State.Health.Status}}' "$(container "$svc")" 2>/dev/null)" != healthy ]; do
      [ $SECONDS -lt $deadline ] || fail "$svc is not healthy after 300 s"
      sleep 1
    done
  done
}
psql_db() { docker exec -i "$(container db)" psql -v ON_ERROR_STOP=1 -qtA -U voc -d voc "$@"; }
ready_version() { # SERVICE: the version its /readyz reports, asked inside its container
  docker exec "$(container "$1")" voc healthcheck | json 'd["model_version"]'
}

# --- 1. classify, feedback, read back -----------------------------------------------------
phase "up (first start)"
"${COMPOSE[@]}" up -d --no-build
wait_healthy db voc
"${COMPOSE[@]}" logs --no-color model-init >"$WORK/init.log" 2>&1
grep -q "training one on" "$WORK/init.log" || fail "model-init did not train the demo model: $(tail -5 "$WORK/init.log")"
phase "classify -> feedback -> read"
answer="$(api POST /classify '{"text": "I was charged twice for my card", "call_id": "docker-call-1"}')"
id="$(echo "$answer" | json 'd["transcript_id"]')"
version="$(echo "$answer" | json 'd["model_version"]')"
api POST /feedback '{"call_id": "docker-call-1", "labels": {"category": "declined_card_payment"}, "annotator": "qa-docker"}' >/dev/null
api GET "/transcripts/$id" >"$WORK/transcript.json"
grep -q declined_card_payment "$WORK/transcript.json" || fail "the label is not on the transcript: $(cat "$WORK/transcript.json")"
echo "docker-test: transcript $id classified by $version, label read back"

# --- 2. Postgres restarted under load -----------------------------------------------------
# The db container is stopped (not just bounced, which the pool rides out unnoticed) and
# started again once the service says it is gone (/readyz 503): requests in between get 503,
# and afterwards 2xx again.
phase "postgres restart under load"
python3 docker/load_check.py --port "$VOC_PORT" --seconds 30 --concurrency 8 --ids "$WORK/ids.txt" >"$WORK/load.json" &
load=$!
sleep 5
"${COMPOSE[@]}" stop -t 10 db >/dev/null
code=""
for _ in $(seq 1 120); do
  code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$VOC_PORT/readyz" || true)"
  [ "$code" = 503 ] && break
  sleep 0.25
done
[ "$code" = 503 ] || fail "/readyz answers $code with the db container stopped"
down_at=$SECONDS
"${COMPOSE[@]}" start db >/dev/null
wait_healthy db
echo "docker-test: db stopped, /readyz 503, db started and healthy again in $((SECONDS - down_at)) s"
wait "$load"
cat "$WORK/load.json"
python3 - "$WORK/load.json" <<'EOF2' || fail "the restart under load did not go as it must"
import json, sys
r = json.load(open(sys.argv[1]))
statuses = set(r["by_status"])
ok = {s for s in statuses if s.startswith("2")}
assert ok, "no 2xx answer at all"
assert "503" in statuses, f"no 503 while Postgres was away: {r['by_status']}"
assert statuses - ok <= {"503"}, f"answers other than 2xx and 503: {r['by_status']}"
assert r["ok_after_last_failure"] > 0, "no 2xx after the last 503: no recovery"
EOF2
answered=$(wc -l <"$WORK/ids.txt")
stored=$( (echo "CREATE TEMP TABLE answered (id uuid); COPY answered FROM STDIN;"; cat "$WORK/ids.txt"; printf '\\.\n'; echo "SELECT count(*) FROM answered a JOIN transcripts t ON t.id = a.id;") | psql_db)
[ "$answered" = "$stored" ] || fail "$answered transcripts answered 2xx, $stored of them stored"
echo "docker-test: $answered answered with 2xx, every one stored"

# --- 3. down + up keeps the data ----------------------------------------------------------
phase "down + up keeps data"
versions_before="$(api GET /models | json 'sorted(m["version"] for m in d["versions"])')"
"${COMPOSE[@]}" down
"${COMPOSE[@]}" up -d --no-build
wait_healthy db voc
"${COMPOSE[@]}" logs --no-color model-init >"$WORK/init.log" 2>&1
grep -q "already holds a model version" "$WORK/init.log" || fail "model-init trained again after down + up"
api GET "/transcripts/$id" >"$WORK/transcript.json"
grep -q declined_card_payment "$WORK/transcript.json" || fail "transcript $id or its label is gone after down + up"
versions_after="$(api GET /models | json 'sorted(m["version"] for m in d["versions"])')"
[ "$versions_before" = "$versions_after" ] || fail "model versions changed: $versions_before -> $versions_after"
echo "docker-test: transcript, label and versions $versions_after kept"

# --- 4. two replicas behind nginx ---------------------------------------------------------
phase "replicas: train, both serve"
"${COMPOSE[@]}" --profile replicas up -d --no-build
wait_healthy voc voc-replica
for _ in $(seq 1 30); do API_PORT=$VOC_LB_PORT api GET /readyz >/dev/null 2>&1 && break; sleep 1; done
docker exec "$(container voc)" sh -c 'voc import --database-url "$DATABASE_URL" /app/fixtures/demo_test.jsonl' >/dev/null
run="$(API_PORT=$VOC_LB_PORT api POST /training-runs | json 'd["run"]["id"]')"
deadline=$((SECONDS + 600))
while :; do
  state="$(API_PORT=$VOC_LB_PORT api GET "/training-runs/$run" | json 'd["state"]')"
  case "$state" in promoted | rejected | failed | cancelled) break ;; esac
  [ $SECONDS -lt $deadline ] || fail "run $run did not end in 600 s (state $state)"
  sleep 2
done
API_PORT=$VOC_LB_PORT api GET "/training-runs/$run" >"$WORK/run.json"
[ "$state" = promoted ] || fail "run $run ended $state: $(cat "$WORK/run.json")"
candidate="$(json 'd["candidate_version"]' <"$WORK/run.json")"
owner="$(json 'd["owner"]' <"$WORK/run.json")"
for svc in voc voc-replica; do
  for _ in $(seq 1 40); do [ "$(ready_version $svc)" = "$candidate" ] && break; sleep 0.5; done
  [ "$(ready_version $svc)" = "$candidate" ] || fail "$svc serves $(ready_version $svc), not $candidate"
done
echo "docker-test: run $run by $owner promoted $candidate; voc and voc-replica both serve it"

phase "replicas: trainer killed"
# Long runs from here on: both replicas restart with the new setting.
VOC_FINETUNE_EPOCHS=10000 "${COMPOSE[@]}" --profile replicas up -d --no-build voc voc-replica
wait_healthy voc voc-replica
# nginx resolved the replicas' addresses when it started; recreated containers have new ones.
VOC_FINETUNE_EPOCHS=10000 "${COMPOSE[@]}" --profile replicas restart lb >/dev/null
for _ in $(seq 1 30); do API_PORT=$VOC_LB_PORT api GET /readyz >/dev/null 2>&1 && break; sleep 1; done
run="$(API_PORT=$VOC_LB_PORT api POST /training-runs | json 'd["run"]["id"]')"
deadline=$((SECONDS + 120))
while :; do
  API_PORT=$VOC_LB_PORT api GET "/training-runs/$run" >"$WORK/run.json"
  [ "$(json 'd["state"]' <"$WORK/run.json")" = running ] && break
  [ $SECONDS -lt $deadline ] || fail "run $run did not start: $(cat "$WORK/run.json")"
  sleep 1
done
owner_host="$(json 'd["owner"].split(":")[0]' <"$WORK/run.json")"
trainer="" survivor=""
for svc in voc voc-replica; do
  if [ "$(docker inspect -f '{{.Config.Hostname}}' "$(container $svc)")" = "$owner_host" ]; then
    trainer=$svc
  else
    survivor=$svc
  fi
done
[ -n "$trainer" ] && [ -n "$survivor" ] || fail "no replica's container is the run's owner $owner_host"
docker kill "$(container $trainer)" >/dev/null
for i in $(seq 1 20); do
  API_PORT=$VOC_LB_PORT api POST /classify "{\"text\": \"my card payment was declined\", \"call_id\": \"after-kill-$i\"}" >/dev/null \
    || fail "classify through nginx failed after $trainer was killed"
done
deadline=$((SECONDS + 120))
while :; do
  state="$(API_PORT=$VOC_LB_PORT api GET "/training-runs/$run" | json 'd["state"]')"
  [ "$state" = failed ] && break
  [ $SECONDS -lt $deadline ] || fail "run $run is $state 120 s after its trainer was killed"
  sleep 1
done
echo "docker-test: killed $trainer mid-run; $survivor answered 20 of 20 through nginx; run $run marked failed"
phase ""
