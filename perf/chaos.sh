#!/usr/bin/env bash
# The fault matrix (issue 11): load through real processes while faults are
# injected, then one table of what was answered against what the ledger holds.
#
# Processes, all on this machine: two `bidder serve` (alpha bids 0.5, beta 1.0;
# beta is the budgeted one, its total budget set per row so it runs out
# mid-row), one `exchange serve` (three in the replicas row), tansu (Kafka
# API), `exchange ledger`, and a scratch database on PostgreSQL at
# 127.0.0.1:5432 (created per run, dropped at the end). Load: open-loop
# HTTP/1.1 keep-alive from perf/chaos.py (Python 3.11 stdlib), every request
# id unique. Rows (faults), each on a live system that caught up after the
# previous one:
#   healthy         no fault (the deadline-adherence reference)
#   kafka-stop      broker unreachable 60 s under load, then back (see CHAOS_KAFKA_STOP)
#   pg-stop         PostgreSQL stopped 30 s (pg_ctlcluster stop -m fast), restarted
#   pg-stall        PostgreSQL stalled lease TTL + 5 s: ACCESS EXCLUSIVE locks on
#                   the ledger and budget tables held, and every other backend of
#                   the scratch database SIGSTOPped; then SIGCONT, locks released
#   ledger-kill     `exchange ledger` SIGKILLed twice mid-batch (once blocked inside
#                   its batch transaction on a held lock, once 0.3 s into draining
#                   a 5 s backlog), restarted each time
#   exchange-kill   the exchange SIGKILLed and restarted twice (Kafka up; Kafka
#                   down, so the restart replays its spool)
#   spool-full      the exchange's spool on a 512 KiB tmpfs while Kafka is away 20 s
#                   (without mount permission: RLIMIT_FSIZE on the exchange instead)
#   replicas-stall  three replicas share one small budget while PostgreSQL stalls
#   budget-crud     beta's budget created, lowered and deleted under load
# After each row: fault | sent | answered (200+204) | within tmax (%) |
# Σ clearing prices answered (µ) | Σ debits in the ledger (µ) | lost | doubled |
# overspend (µ) | notes. lost: answered wins (request id, imp id) without a
# debit; doubled: debits beyond one per win; overspend: beta's spend past its
# budget. Exit status 1 when any row has lost, doubled, overspend or a debit
# amount unlike the price answered; 2 when the run itself failed.
#
#   bash perf/chaos.sh                 # full matrix, about 15 minutes
#   CHAOS_SHORT=1 bash perf/chaos.sh   # CI form: healthy, kafka-stop, pg-stall,
#                                      # ledger-kill, exchange-kill, budget-crud,
#                                      # short outages, lease TTL 4 s; ~3 minutes
#
# Env: BIN (target/release; `cargo build --release --bins` when the binaries are
# missing), CHAOS_OUT (perf/out/chaos-<UTC timestamp>), CHAOS_RATE (150 req/s,
# 100 short), CHAOS_TMAX (200 ms), CHAOS_CONNECTIONS (32), CHAOS_TIMEOUT_S (2),
# CHAOS_LEASE_TTL_MS (15000, 4000 short), CHAOS_FAULTS (comma list of row keys;
# healthy always runs), CHAOS_SPOOL_FS (auto|tmpfs|rlimit), CHAOS_SPOOL_FS_KB
# (512), TANSU (tansu on PATH or ~/.cargo/bin), TANSU_STORAGE (memory://tansu/),
# CHAOS_KAFKA_STOP (how the broker goes down: cut, the default with memory
# storage: the clients reach tansu through perf/chaos_proxy.py, which resets
# every connection and refuses new ones for the outage, since restarting
# memory storage loses the log; restart, the default with a persistent
# TANSU_STORAGE: SIGTERM and a new tansu; freeze: SIGSTOP/SIGCONT; the full
# run adds a kafka-freeze row last), CHAOS_LEDGER_ASSIGNMENT (the ledger's
# ledger.assignment: all, the default, or group; tansu's group coordinator
# stops assigning after a freeze), CHAOS_KEEP_DB=1 (keep the scratch
# database), PG_HOST (127.0.0.1).
#
# Needs: python3 >= 3.11, psql and pg_isready, pg_ctlcluster (Debian
# postgresql-common) with root to stop/start the local cluster, root to mount
# tmpfs and to SIGSTOP PostgreSQL backends, tansu
# (cargo install tansu --locked --features dynostore). Stops the machine's
# PostgreSQL for 30 s (pg-stop): do not run it beside tests that need it.
# Everything started is killed on exit; PostgreSQL is restarted and every
# SIGSTOPped process SIGCONTed whatever happens. Output: perf/out/chaos-*/
# (table.md, results.json, chaos.log, one log per process, every request).
set -euo pipefail
cd "$(dirname "$0")/.."

export BIN=${BIN:-target/release}
if [ ! -x "$BIN/exchange" ] || [ ! -x "$BIN/bidder" ]; then
  echo "chaos: building the release binaries (cargo build --release --bins)" >&2
  cargo build --release --bins --locked
fi
export CHAOS_OUT=${CHAOS_OUT:-perf/out/chaos-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$CHAOS_OUT"
CHAOS_OUT=$(cd "$CHAOS_OUT" && pwd)
export BIN=$(cd "$BIN" && pwd)

TANSU=${TANSU:-$(command -v tansu || true)}
[ -n "$TANSU" ] || TANSU="$HOME/.cargo/bin/tansu"
[ -x "$TANSU" ] || { echo "chaos: tansu not found: cargo install tansu --locked --features dynostore" >&2; exit 2; }
export TANSU
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "chaos: needs python3 >= 3.11" >&2; exit 2; }
for tool in psql pg_isready pg_ctlcluster; do
  command -v "$tool" >/dev/null || { echo "chaos: $tool missing (Debian postgresql-client, postgresql-common)" >&2; exit 2; }
done
export PG_HOST=${PG_HOST:-127.0.0.1}
PG_USER=""
for u in postgres root; do
  if psql -h "$PG_HOST" -U "$u" -d test -XAtqc 'select 1' >/dev/null 2>&1; then PG_USER=$u; break; fi
done
[ -n "$PG_USER" ] || { echo "chaos: PostgreSQL at $PG_HOST:5432 unreachable (users postgres, root; database test)" >&2; exit 2; }
export PG_USER
export PG_CLUSTER=${PG_CLUSTER:-$(ls /etc/postgresql 2>/dev/null | head -n1)}

# Whatever happens to chaos.py (even SIGKILL): PostgreSQL running again,
# nothing left SIGSTOPped, the tmpfs unmounted.
restore() {
  if [ -f "$CHAOS_OUT/stopped-pids" ]; then
    while read -r pid; do [ -n "$pid" ] && kill -CONT "$pid" 2>/dev/null || true; done < "$CHAOS_OUT/stopped-pids"
  fi
  if ! pg_isready -h "$PG_HOST" -q 2>/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$PG_CLUSTER" main start 2>/dev/null || true
  fi
  if [ -f "$CHAOS_OUT/mounted" ]; then umount -l "$(cat "$CHAOS_OUT/mounted")" 2>/dev/null || true; fi
  if [ -n "${py_pid:-}" ]; then kill "$py_pid" 2>/dev/null || true; wait "$py_pid" 2>/dev/null || true; fi
}
trap restore EXIT
trap 'exit 130' INT TERM

echo "chaos: output in $CHAOS_OUT (binaries $BIN, $TANSU, PostgreSQL user $PG_USER)" >&2
python3 perf/chaos.py &
py_pid=$!
rc=0
wait "$py_pid" || rc=$?
py_pid=""
exit "$rc"
