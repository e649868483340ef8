#!/usr/bin/env bash
# Local stand-ins for the base images docker/Dockerfile and docker/compose.yaml name, for a
# machine that reaches Debian's mirror, PyPI and crates.io but no image registry (this one).
# With registry access none of this is needed: Docker pulls the real images.
#
# Each stand-in is a debootstrap'd Debian bookworm (--variant=minbase, from the mirror in the
# machine's apt sources) imported with `docker import`, plus what the real image offers that
# the Dockerfile uses:
#   debian:bookworm-slim      minbase
#   python:3.11-slim-bookworm python3 + pip, and the torch wheels (PIP_NO_INDEX, PIP_FIND_LINKS)
#   rust:1.95-bookworm        gcc/g++, this machine's Rust toolchain, its crates (offline)
#   postgres:15-bookworm      postgresql-15 and an entrypoint with the official image's
#                             POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB / PGDATA contract
#   nginx:stable-bookworm     nginx-light, `nginx -g 'daemon off;'`
# An image already present is kept (`--rebuild` makes them again). `--cuda` gives the python
# stand-in every wheel torch==2.11.0 depends on, the ~3 GB of CUDA libraries too, for
# `--build-arg TORCH_VARIANT=cuda` (docker/cuda-image.sh). Needs root (debootstrap).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${VOC_CACHE:-$HOME/.cache/voc}/docker"
mkdir -p "$CACHE/debs"
MIRROR="${VOC_DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
REBUILD=0 CUDA=0
for arg in "$@"; do
  case "$arg" in
    --rebuild) REBUILD=1 ;;
    --cuda) CUDA=1 ;;
    *) echo "standins: unknown option $arg (--rebuild, --cuda)" >&2; exit 2 ;;
  esac
done

log() { echo "standins: $*" >&2; }

need_tools() {
  command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >&2
}

# rootfs DIR PACKAGES: a minbase bookworm in DIR with the comma-separated PACKAGES.
rootfs() {
  local dir="$1" include="$2"
  rm -rf "$dir"
  local extra=()
  [ -n "$include" ] && extra=(--include="$include")
  debootstrap --variant=minbase --cache-dir="$CACHE/debs" "${extra[@]}" bookworm "$dir" "$MIRROR" >&2
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb
}

# import DIR TAG CHANGES...: DIR as the image TAG, with Dockerfile-style --change lines.
import() {
  local dir="$1" tag="$2"
  shift 2
  local changes=()
  for c in "$@"; do changes+=(--change "$c"); done
  tar -C "$dir" -c . | docker import "${changes[@]}" - "$tag" >/dev/null
  rm -rf "$dir"
  log "made $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
}

wanted() {
  [ "$REBUILD" = 1 ] && return 0
  ! docker image inspect "$1" >/dev/null 2>&1
}

work="$(mktemp -d "$CACHE/root.XXXXXX")"
trap 'rm -rf "$work"' EXIT

if wanted debian:bookworm-slim; then
  need_tools
  rootfs "$work/r" ""
  import "$work/r" debian:bookworm-slim 'CMD ["bash"]'
fi

# The python stand-in's wheel set: "cpu" (what the CPU build installs) or "cuda" (all of them).
python_wheels() {
  docker image inspect -f '{{index .Config.Labels "voc.standin.wheels"}}' python:3.11-slim-bookworm 2>/dev/null || true
}
if wanted python:3.11-slim-bookworm || { [ "$CUDA" = 1 ] && [ "$(python_wheels)" != cuda ]; }; then
  need_tools
  # The wheels the Dockerfile's build installs, fetched once from PyPI on this machine.
  source scripts/env.sh
  [ -x "$VOC_VENV/bin/pip" ] || bash scripts/setup.sh >/dev/null
  wheels=cpu
  mkdir -p "$CACHE/wheels"
  "$VOC_VENV/bin/pip" download --quiet --no-deps --dest "$CACHE/wheels" \
    torch==2.11.0 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85 >&2
  if [ "$CUDA" = 1 ]; then
    wheels=cuda
    mkdir -p "$CACHE/wheels-cuda"
    "$VOC_VENV/bin/pip" download --quiet --dest "$CACHE/wheels-cuda" torch==2.11.0 >&2
  fi
  rootfs "$work/r" "python3,python3-pip"
  mkdir -p "$work/r/wheels"
  cp "$CACHE"/wheels/*.whl "$work/r/wheels/"
  if [ "$wheels" = cuda ]; then cp "$CACHE"/wheels-cuda/*.whl "$work/r/wheels/"; fi
  import "$work/r" python:3.11-slim-bookworm "LABEL voc.standin.wheels=$wheels" \
    'ENV PIP_NO_INDEX=1' 'ENV PIP_FIND_LINKS=/wheels' 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' \
    'ENV PIP_ROOT_USER_ACTION=ignore' 'ENV PIP_DISABLE_PIP_VERSION_CHECK=1' 'CMD ["python3"]'
fi

if wanted rust:1.95-bookworm; then
  need_tools
  sysroot="$(rustc --print sysroot)"
  rootfs "$work/r" "gcc,g++,libc6-dev,ca-certificates"
  mkdir -p "$work/r/usr/local/rustup/toolchains/1.95-x86_64-unknown-linux-gnu" "$work/r/usr/local/cargo/bin"
  tar -C "$sysroot" --exclude=./share/doc -c . \
    | tar -C "$work/r/usr/local/rustup/toolchains/1.95-x86_64-unknown-linux-gnu" -x
  for tool in cargo rustc rustdoc; do
    ln -s "/usr/local/rustup/toolchains/1.95-x86_64-unknown-linux-gnu/bin/$tool" "$work/r/usr/local/cargo/bin/$tool"
  done
  # The crates this project's Cargo.lock names, from this machine's cargo cache (the build
  # runs with CARGO_NET_OFFLINE, as nothing else is reachable from a container here).
  source scripts/env.sh
  cargo fetch --locked >&2
  mkdir -p "$work/r/usr/local/cargo/registry"
  cp -a "${CARGO_HOME:-$HOME/.cargo}/registry/index" "${CARGO_HOME:-$HOME/.cargo}/registry/cache" \
    "$work/r/usr/local/cargo/registry/"
  import "$work/r" rust:1.95-bookworm \
    'ENV RUSTUP_HOME=/usr/local/rustup' 'ENV CARGO_HOME=/usr/local/cargo' \
    'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'ENV CARGO_NET_OFFLINE=true' 'CMD ["bash"]'
fi

if wanted postgres:15-bookworm; then
  need_tools
  rootfs "$work/r" "postgresql-15"
  # The package made a cluster of its own; the entrypoint makes one in PGDATA instead.
  rm -rf "$work/r/etc/postgresql/15" "$work/r/var/lib/postgresql/15"
  install -m 0755 docker/standins/postgres-entrypoint.sh "$work/r/usr/local/bin/docker-entrypoint.sh"
  import "$work/r" postgres:15-bookworm \
    'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'ENV PGDATA=/var/lib/postgresql/data' 'EXPOSE 5432' \
    'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["postgres"]'
fi

if wanted nginx:stable-bookworm; then
  need_tools
  rootfs "$work/r" "nginx-light"
  rm -f "$work/r/etc/nginx/sites-enabled/default"
  ln -sf /dev/stdout "$work/r/var/log/nginx/access.log"
  ln -sf /dev/stderr "$work/r/var/log/nginx/error.log"
  import "$work/r" nginx:stable-bookworm 'EXPOSE 80' \
    'CMD ["nginx", "-g", "daemon off;"]'
fi
