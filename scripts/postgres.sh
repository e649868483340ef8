# Sourced by the project's scripts. `ensure_database` exports DATABASE_URL: when it is already
# set it is left alone; otherwise a private PostgreSQL is started (or reused) with its data in
# the project's `.pgdata/` (or `$VOC_PGDATA`), listening on a unix socket there and on a free
# localhost port. Installs Debian's `postgresql` package when no server binaries are found.
#
# The cluster asks for a password (scram-sha-256) on every connection, socket and TCP alike:
# other users of the machine can reach 127.0.0.1 too, so trust auth would hand them the data.
# The password is generated once into `.pgdata/password` (mode 0600) and goes into DATABASE_URL.
# A cluster made by an older version of this script with trust auth is given the password and
# switched to scram at its next start.

_voc_pg_bindir() {
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"; return 0
  fi
  return 1
}

_voc_pg_new_password() {
  python3 -c 'import secrets; print(secrets.token_urlsafe(24))'
}

# pg_hba.conf of the private cluster: a password for everyone, on the socket and on loopback.
_voc_pg_write_hba() {
  cat >"$1" <<'HBA'
# written by scripts/postgres.sh: no trust, a scram-sha-256 password on every connection
local   all   all                 scram-sha-256
host    all   all   127.0.0.1/32  scram-sha-256
host    all   all   ::1/128       scram-sha-256
HBA
}

_voc_pg_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

ensure_database() {
  if [ -n "${DATABASE_URL:-}" ]; then return 0; fi
  local root data bindir port as_pg=()
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  data="${VOC_PGDATA:-$root/.pgdata}"
  if ! bindir="$(_voc_pg_bindir)"; then
    echo "postgres: installing Debian's postgresql package (apt-get)" >&2
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get install -y postgresql >&2 || { $sudo apt-get update >&2 && $sudo apt-get install -y postgresql >&2; }
    bindir="$(_voc_pg_bindir)" || { echo "postgres: no initdb/pg_ctl after installing" >&2; return 1; }
  fi
  mkdir -p "$data/sock"
  chmod 700 "$data"
  if [ ! -s "$data/password" ]; then
    (umask 077; _voc_pg_new_password >"$data/password")
  fi
  chmod 600 "$data/password"
  if [ "$(id -u)" = 0 ]; then
    # PostgreSQL refuses to run as root: the folder belongs to the postgres user.
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$data" postgres
    chown -R postgres: "$data"
    if ! runuser -u postgres -- test -w "$data"; then
      echo "postgres: user 'postgres' cannot reach $data (a parent folder is closed to it); set DATABASE_URL instead" >&2
      return 1
    fi
    as_pg=(runuser -u postgres --)
  fi
  if [ ! -f "$data/db/PG_VERSION" ]; then
    echo "postgres: creating a private cluster in $data/db" >&2
    "${as_pg[@]}" "$bindir/initdb" -D "$data/db" -U postgres --auth=scram-sha-256 \
      --pwfile="$data/password" -E UTF8 >"$data/initdb.log" 2>&1 \
      || { cat "$data/initdb.log" >&2; return 1; }
  fi
  local upgrade=""
  if grep -qE '^[^#]*[[:space:]]trust([[:space:]]|$)' "$data/db/pg_hba.conf"; then upgrade=1; fi
  if [ -f "$data/port" ]; then port="$(cat "$data/port")"; else port="$(_voc_pg_free_port)"; fi
  if ! "${as_pg[@]}" "$bindir/pg_ctl" -D "$data/db" status >/dev/null 2>&1; then
    # A port remembered from an earlier run may have been taken since.
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then port="$(_voc_pg_free_port)"; fi
    echo "$port" >"$data/port"
    "${as_pg[@]}" "$bindir/pg_ctl" -D "$data/db" -l "$data/postgres.log" -w \
      -o "-k $data/sock -h 127.0.0.1 -p $port" start >&2 \
      || { tail -20 "$data/postgres.log" >&2; return 1; }
  fi
  if [ -n "$upgrade" ]; then
    # An older trust cluster: set the password over the socket while trust still holds, then
    # switch every line to scram and reload.
    echo "postgres: switching the private cluster from trust to password auth" >&2
    "${as_pg[@]}" "$bindir/psql" -h "$data/sock" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
      -c "ALTER USER postgres PASSWORD '$(cat "$data/password")'" >&2 || return 1
    _voc_pg_write_hba "$data/db/pg_hba.conf"
    "${as_pg[@]}" "$bindir/pg_ctl" -D "$data/db" reload >&2 || return 1
  fi
  export DATABASE_URL="postgres://postgres:$(cat "$data/password")@127.0.0.1:$port/postgres"
  echo "postgres: using the private server at 127.0.0.1:$port, password in $data/password (stop: pg_ctl -D $data/db stop)" >&2
}
