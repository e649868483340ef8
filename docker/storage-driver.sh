#!/usr/bin/env bash
# Prints the Docker storage driver to start dockerd with here: overlay2 when this machine can
# mount an overlay file system (layers share their files), else vfs (a whole copy of the file
# system for every layer: slow and several GB a build, but it works in any sandbox).
set -euo pipefail
probe="$(mktemp -d)"
trap 'umount "$probe/merged" 2>/dev/null || true; rm -rf "$probe"' EXIT
mkdir -p "$probe/lower" "$probe/upper" "$probe/work" "$probe/merged"
echo probe >"$probe/lower/file"
if mount -t overlay overlay \
  -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" "$probe/merged" 2>/dev/null \
  && [ "$(cat "$probe/merged/file" 2>/dev/null)" = probe ]; then
  echo overlay2
else
  echo vfs
fi
