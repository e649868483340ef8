#!/usr/bin/env bash
# Builds the CUDA variant of the image (`docker/Dockerfile --build-arg TORCH_VARIANT=cuda`) and
# checks it: its size beside the CPU image's, that the binary loads libtorch_cuda (what
# registers the CUDA backend), and that it trains and predicts on the demo data on whatever
# device the machine has (`--device auto`: CUDA when the container sees a GPU, else the CPU).
# Not part of CI: the CUDA wheels are ~3 GB to fetch and the image ~5 GB. On a machine with no
# image registry it first makes the stand-ins (docker/standins.sh --cuda) as docker/test.sh does.
#   bash docker/cuda-image.sh              # GPU flags: VOC_DOCKER_GPU_ARGS="--gpus all"
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${VOC_CACHE:-$HOME/.cache/voc}/docker"
mkdir -p "$CACHE"
STARTED_DOCKERD=""
if ! docker info >/dev/null 2>&1; then
  dockerd --iptables=false --storage-driver="$(bash docker/storage-driver.sh)" >"$CACHE/dockerd.log" 2>&1 &
  STARTED_DOCKERD=$!
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "cuda-image: dockerd did not start (see $CACHE/dockerd.log)" >&2; exit 1; }
fi
stop_engine() {
  if [ -n "$STARTED_DOCKERD" ]; then
    kill "$STARTED_DOCKERD" 2>/dev/null || true
    wait "$STARTED_DOCKERD" 2>/dev/null || true
  fi
}
trap stop_engine EXIT
size() {
  local bytes
  bytes="$(docker image inspect -f '{{.Size}}' "$1" 2>/dev/null)" || { echo "not built here"; return; }
  awk -v b="$bytes" 'BEGIN {printf "%.0f MB", b / 1e6}'
}

echo "cuda-image: engine $(docker version -f '{{.Server.Version}}'), storage $(docker info -f '{{.Driver}}')"
bash docker/standins.sh --cuda
t0=$SECONDS
docker build -q -f docker/Dockerfile --build-arg TORCH_VARIANT=cuda \
  --build-arg VOC_SOURCE_COMMIT="$(git rev-parse HEAD 2>/dev/null || true)" -t voc:cuda . >/dev/null
echo "cuda-image: built voc:cuda in $((SECONDS - t0)) s"
echo "cuda-image: voc:cuda is $(size voc:cuda); voc:latest (CPU) is $(size voc:latest)"

# glibc's loader names every library whose initialiser it runs.
inits="$(docker run --rm -e LD_DEBUG=libs --entrypoint voc voc:cuda --version 2>&1 | grep -c 'calling init: .*libtorch_cuda\.so' || true)"
[ "$inits" -ge 1 ] || { echo "cuda-image: FAIL: voc in voc:cuda does not load libtorch_cuda.so" >&2; exit 1; }
echo "cuda-image: voc loads libtorch_cuda.so"

# shellcheck disable=SC2086
out="$(docker run --rm ${VOC_DOCKER_GPU_ARGS:-} --entrypoint sh voc:cuda -c '
  set -e
  v=$(voc train --train /app/fixtures/demo_train.jsonl --valid /app/fixtures/demo_test.jsonl \
        --epochs 1 --store /tmp/models --device auto 2>/tmp/train.log | tail -1)
  echo "trained $v"
  echo "I want to know why my card payment was declined" | voc predict --model "$v" --device auto
  voc train --train /app/fixtures/demo_train.jsonl --epochs 1 --store /tmp/m2 --device cuda 2>&1 | tail -1 || true
')"
echo "$out" | sed 's/^/cuda-image: in the container: /'
echo "cuda-image: passed"
