# Sourced by scripts/*: find Python 3.11+, make and activate .venv, install the package.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

pick_python() {
  for cand in "${PYTHON:-}" python3.13 python3.12 python3.11 python3 python; do
    [ -n "$cand" ] || continue
    if command -v "$cand" >/dev/null 2>&1 &&
      "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  echo "syncbed needs Python 3.11 or newer; none found on PATH" >&2
  return 1
}

if [ -z "${VIRTUAL_ENV:-}" ]; then
  if [ ! -x .venv/bin/python ]; then
    PY="$(pick_python)"
    echo "==> creating .venv with $PY" >&2
    "$PY" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip >&2
  fi
  # shellcheck disable=SC1091
  source .venv/bin/activate
fi

# Reinstall only when pyproject.toml changed since the last install.
EXTRAS="${SYNCBED_EXTRAS:-test,bench}"
STAMP="$VIRTUAL_ENV/.syncbed-installed"
WANT="$(sha256sum pyproject.toml | cut -d' ' -f1)-$EXTRAS"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "==> installing syncbed[$EXTRAS] into $VIRTUAL_ENV" >&2
  python -m pip install -q -e ".[$EXTRAS]" >&2
  echo "$WANT" >"$STAMP"
fi

ensure_redis() {
  if command -v redis-server >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing redis-server with apt-get" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >&2 || true
  fi
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "redis-server is missing; install it (apt-get install redis-server) to run the Redis tests" >&2
    return 1
  fi
}

pg_binary() {
  # initdb and pg_ctl are on PATH only on some systems; Debian keeps them in /usr/lib/postgresql/<version>/bin.
  if command -v "$1" >/dev/null 2>&1; then command -v "$1"; return 0; fi
  ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1 | grep . || return 1
}

ensure_postgres() {
  # Only the binaries: the tests' `postgres` fixture makes and starts a throwaway cluster itself.
  if pg_binary initdb >/dev/null && pg_binary pg_ctl >/dev/null; then return 0; fi
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing postgresql with apt-get" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2 || true
  fi
  if ! { pg_binary initdb >/dev/null && pg_binary pg_ctl >/dev/null; }; then
    echo "PostgreSQL (initdb, pg_ctl) is missing; install it (apt-get install postgresql) to run the PostgreSQL tests" >&2
    return 1
  fi
}
