#!/usr/bin/env bash
# The auction-event pipeline benchmark (perf/RESULTS.md, "Auction events").
# Starts tansu (in-memory storage) on a free loopback port, creates a scratch
# PostgreSQL database, runs `perf events` in each mode, then stops tansu and
# drops the database. Figures go to stdout and perf/out/events-<time>.txt.
#
#   bash perf/events_bench.sh                # the default series
#   EVENTS=200000 bash perf/events_bench.sh  # more events per step
#
# Needs: tansu (cargo install tansu --locked --features dynostore), PostgreSQL
# at 127.0.0.1:5432 with trust auth (user postgres or root), psql.
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS="${EVENTS:-100000}"
PG_HOST="${PG_HOST:-127.0.0.1}"
TANSU="$(command -v tansu || true)"
[ -n "$TANSU" ] || TANSU="$HOME/.cargo/bin/tansu"
[ -x "$TANSU" ] || { echo "tansu not found: cargo install tansu --locked --features dynostore" >&2; exit 1; }

PG_USER=""
for u in postgres root; do
  if psql -h "$PG_HOST" -U "$u" -d test -Atc 'select 1' >/dev/null 2>&1; then PG_USER="$u"; break; fi
done
[ -n "$PG_USER" ] || { echo "PostgreSQL at $PG_HOST:5432 unreachable (users postgres, root)" >&2; exit 1; }

cargo build --release -p rtb-perf --bin perf --locked
PERF=target/release/perf

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
DB="perf_events_$(date +%s)_$$"
mkdir -p perf/out
OUT="perf/out/events-$(date +%Y%m%d-%H%M%S).txt"
TLOG="$(mktemp)"

"$TANSU" broker --listener-url "tcp://127.0.0.1:$PORT" --advertised-listener-url "tcp://127.0.0.1:$PORT" \
  --storage-engine memory://tansu/ >"$TLOG" 2>&1 &
TANSU_PID=$!
cleanup() {
  kill "$TANSU_PID" 2>/dev/null || true
  wait "$TANSU_PID" 2>/dev/null || true
  psql -h "$PG_HOST" -U "$PG_USER" -d test -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -f "$TLOG"
}
trap cleanup EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done
psql -h "$PG_HOST" -U "$PG_USER" -d test -qc "CREATE DATABASE $DB"
URL="postgres://$PG_USER@$PG_HOST:5432/$DB"
B=(--brokers "127.0.0.1:$PORT" --database-url "$URL")

run() { echo "\$ perf events $*" | sed "s#$URL#\$DATABASE_URL#; s#127.0.0.1:$PORT#\$BROKERS#"; "$PERF" events "$@"; echo; }
{
  echo "# perf/events_bench.sh, $(date -u +%FT%TZ), $(nproc) CPUs, tansu $("$TANSU" --version 2>/dev/null | head -n1), PostgreSQL $(psql -h "$PG_HOST" -U "$PG_USER" -d test -Atc 'show server_version')"
  echo
  # Baselines: PostgreSQL alone, and the producer alone.
  run --mode insert "${B[@]}" --events "$EVENTS" --batch-max 500
  run --mode producer "${B[@]}" --events "$EVENTS"
  # The ledger alone, draining a backlog, at several batch sizes.
  for bm in 100 500 2000; do
    run --mode backlog "${B[@]}" --events "$EVENTS" --batch-max "$bm"
  done
  # Producer and ledger together: unpaced (throughput), then paced (lag).
  run --mode pipeline "${B[@]}" --events "$EVENTS" --batch-max 2000
  run --mode pipeline "${B[@]}" --batch-max 500 --rate "${LAG_RATE:-2000}" --events "$(( EVENTS / 5 ))"
} 2>&1 | tee "$OUT"
echo "written: $OUT"
