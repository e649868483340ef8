# Sourced by the load benchmarks: installs wrk from Debian's packages when it is missing.
ensure_wrk() {
  command -v wrk >/dev/null 2>&1 && return
  echo "bench: installing wrk (apt-get)" >&2
  if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >&2 || { apt-get update >&2 && apt-get install -y wrk >&2; }
  else sudo apt-get install -y wrk >&2; fi
}
