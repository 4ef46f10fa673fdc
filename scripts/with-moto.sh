#!/usr/bin/env bash
# Runs CMD... with SOC_TEST_S3_ENDPOINT pointing at a throwaway moto S3 server (from .venv,
# see python/requirements-test.txt) on a free loopback port, then always stops it. State is in
# memory and shared by every test: tests use a fresh bucket each.
#   scripts/with-moto.sh cargo test -p soc-server --test s3
set -euo pipefail
if [ $# -eq 0 ]; then echo "usage: $0 CMD [ARGS...]" >&2; exit 2; fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MOTO=${MOTO_SERVER:-$ROOT/.venv/bin/moto_server}
[ -x "$MOTO" ] || {
  echo "moto_server not found at $MOTO: .venv/bin/pip install -r python/requirements-test.txt (or set MOTO_SERVER)" >&2
  exit 2
}
PORT=${MOTO_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
LOG=$(mktemp /tmp/soc-moto.XXXXXX.log)

"$MOTO" -H 127.0.0.1 -p "$PORT" >"$LOG" 2>&1 &
MOTO_PID=$!
cleanup() {
  kill "$MOTO_PID" 2>/dev/null || true
  wait "$MOTO_PID" 2>/dev/null || true
  rm -f "$LOG"
}
trap cleanup EXIT
trap "exit 130" INT
trap "exit 143" TERM

up=
for _ in $(seq 100); do
  if python3 -c "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:$PORT/moto-api/', timeout=1)" 2>/dev/null; then
    up=1; break
  fi
  kill -0 "$MOTO_PID" 2>/dev/null || break
  sleep 0.2
done
if [ -z "$up" ]; then
  echo "with-moto: moto did not start on port $PORT:" >&2; cat "$LOG" >&2; exit 1
fi
export SOC_TEST_S3_ENDPOINT="http://127.0.0.1:$PORT"
echo "with-moto: S3 (moto) on $SOC_TEST_S3_ENDPOINT" >&2
set +e
"$@"
status=$?
set -e
exit $status
