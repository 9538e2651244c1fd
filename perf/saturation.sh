#!/usr/bin/env bash
# Past saturation, excess load must be shed, not slowed: a closed-loop h2load
# run against an `exchange serve` process and 8 `bidder serve` processes (one
# hanging, one trickling its answers), everything on this machine, then the
# exchange's own clock (end_to_end and fanout_wait from /v1/stats/latency)
# against the requests' tmax, and CPU time per answered auction of the
# exchange and of the bidders (from /proc, over the h2load run).
#
#   bash perf/saturation.sh [OUT_DIR]    # default perf/out/saturation-<timestamp>
#
# Env: CONNS (8), STREAMS (16), REQUESTS (40000), TMAX (100), BIN (target/release),
# AUCTION_RUNTIME (true: the exchange's `server.auction_runtime`; false runs
# the auctions on the connection runtime, the layout before it),
# PACE_REFUSALS (true: `server.pace_refusals`; false answers every refusal
# as fast as it comes, the layout before it), MAX_REFUSALS
# (`server.max_refusals_per_sec`, 0: 4,000 per CPU core), LAG_MS
# (`server.max_scheduling_lag_ms`; unset: the default), QUEUE_MS
# (`server.max_queue_delay_ms`; unset: the default; 0: no queue signal), EVENTS (false: no
# auction events; true: the embedded default, in-process Kafka mock and
# SQLite ledger, with its state under OUT_DIR), JOURNAL (with EVENTS=true:
# `kafka.journal`, the crash journal written before each answer leaves).
# Needs h2load (Debian nghttp2-client) and jq. Prints one summary line per run
# and writes h2load's output and the latency report under OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-perf/out/saturation-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$out"
bin=${BIN:-target/release}
conns=${CONNS:-8}
streams=${STREAMS:-16}
requests=${REQUESTS:-40000}
tmax=${TMAX:-100}
[ -x "$bin/exchange" ] || cargo build --release -q -p rtb-exchange -p rtb-bidder --bins
command -v h2load >/dev/null || { echo "h2load missing: apt-get install nghttp2-client" >&2; exit 1; }

# EXCHANGE_CPUS / LOAD_CPUS (taskset lists, e.g. 0 and 1): pin the exchange,
# and the bidders with h2load, to CPUs of their own, so the load generator
# and the simulated bidders do not take the exchange's CPU (a production
# exchange does not share its cores with its publishers and bidders).
ex_pin=""; load_pin=""
[ -z "${EXCHANGE_CPUS:-}" ] || ex_pin="taskset -c $EXCHANGE_CPUS"
[ -z "${LOAD_CPUS:-}" ] || load_pin="taskset -c $LOAD_CPUS"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
for i in 1 2 3 4 5 6 7 8; do
  fault=""
  [ "$i" = 7 ] && fault="--fault hang"
  [ "$i" = 8 ] && fault="--fault trickle"
  # shellcheck disable=SC2086
  $load_pin "$bin/bidder" serve --listen 127.0.0.1:0 --seat "b$i" --price "$i" $fault > "$out/bidder-$i.out" 2>&1 & pids+=($!)
done
for i in 1 2 3 4 5 6 7 8; do
  for _ in $(seq 50); do grep -q 'listening on' "$out/bidder-$i.out" && break; sleep 0.1; done
done
cfg="$out/exchange.toml"
{
  echo 'metrics_listen = "127.0.0.1:18090"'
  echo '[server]'
  echo "auction_runtime = ${AUCTION_RUNTIME:-true}"
  echo "pace_refusals = ${PACE_REFUSALS:-true}"
  echo "max_refusals_per_sec = ${MAX_REFUSALS:-0}"
  [ -z "${LAG_MS:-}" ] || echo "max_scheduling_lag_ms = $LAG_MS"
  [ -z "${QUEUE_MS:-}" ] || echo "max_queue_delay_ms = $QUEUE_MS"
  echo '[kafka]'
  if [ "${EVENTS:-false}" = true ]; then
    echo 'enabled = true'
    echo "journal = ${JOURNAL:-true}"
    echo "spool_path = \"$out/spool\""
    echo "dead_letter_path = \"$out/dead-letters\""
    echo '[ledger]'
    echo "sqlite_path = \"$out/ledger.sqlite\""
  else
    echo 'enabled = false'
  fi
  for i in 1 2 3 4 5 6 7 8; do
    url=$(sed -n 's/.*listening on //p' "$out/bidder-$i.out")
    printf '[[bidders]]\nname = "b%s"\nendpoints = ["%s"]\n' "$i" "$url"
  done
} > "$cfg"
$ex_pin "$bin/exchange" serve --config "$cfg" --listen 127.0.0.1:18080 > "$out/exchange.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do curl -sf http://127.0.0.1:18090/readyz >/dev/null && break; sleep 0.1; done
body="$out/request.json"
printf '{"id":"sat","tmax":%s,"imp":[{"id":"1","banner":{"w":300,"h":250}}],"site":{"id":"s"}}' "$tmax" > "$body"
# CPU time (user + system, clock ticks) of a set of processes, from /proc.
cpu_ticks() { local t=0 p; for p in "$@"; do t=$(( t + $(awk '{print $14 + $15}' "/proc/$p/stat") )); done; echo "$t"; }
ex_pid=${pids[-1]}
bidder_pids=("${pids[@]:0:8}")
ex_cpu0=$(cpu_ticks "$ex_pid"); bid_cpu0=$(cpu_ticks "${bidder_pids[@]}")
$load_pin h2load -c "$conns" -m "$streams" -n "$requests" -d "$body" -H 'content-type: application/json' \
  http://127.0.0.1:18080/openrtb2/auction > "$out/h2load.txt" 2>&1 || true
ex_cpu=$(( $(cpu_ticks "$ex_pid") - ex_cpu0 )); bid_cpu=$(( $(cpu_ticks "${bidder_pids[@]}") - bid_cpu0 ))
curl -s http://127.0.0.1:18090/v1/stats/latency > "$out/latency.json"
curl -s http://127.0.0.1:18090/metrics > "$out/metrics.txt"
rps=$(sed -n 's/.*finished in .*, \([0-9.]*\) req\/s.*/\1/p' "$out/h2load.txt")
codes=$(grep -E '^status codes' "$out/h2load.txt" | sed 's/status codes: //')
ok=$(sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p' "$out/h2load.txt")
tck=$(getconf CLK_TCK)
# CPU per answered (2xx) auction, µs: the exchange's, and the 8 bidders' together.
ex_us=$(( ok > 0 ? ex_cpu * 1000000 / tck / ok : 0 ))
bid_us=$(( ok > 0 ? bid_cpu * 1000000 / tck / ok : 0 ))
reqmax=$(awk '$1=="time" && $2=="for" && $3=="request:" {print $5}' "$out/h2load.txt")
stage() { jq -r --arg s "$1" --arg f "$2" '.stages[$s].last_5m[$f] // .stages[$s].last_1m[$f] // "?"' "$out/latency.json"; }
printf 'events %s, journal %s, auction_runtime %s, pace_refusals %s, max_queue_delay_ms %s, h2load -c %s -m %s, tmax %s ms: %s req/s; %s; publisher max %s; end_to_end p99.9 %s ms max %s ms; fanout_wait max %s ms; queue p99 %s ms max %s ms; CPU per 2xx: exchange %s µs, bidders %s µs\n' \
  "${EVENTS:-false}" "${JOURNAL:-true}" "${AUCTION_RUNTIME:-true}" "${PACE_REFUSALS:-true}" "${QUEUE_MS:-default}" "$conns" "$streams" "$tmax" "$rps" "$codes" "$reqmax" \
  "$(stage end_to_end p999_ms)" "$(stage end_to_end max_ms)" "$(stage fanout_wait max_ms)" "$(stage queue p99_ms)" "$(stage queue max_ms)" "$ex_us" "$bid_us" | tee "$out/summary.txt"
