#!/usr/bin/env bash
# The adaptive wait on and off, same scenario, same machine, interleaved
# (on, off, on, off, ...: drift in the machine's load hits both alike).
# Prints per run and per setting: publisher-seen p50 / p99 (ms, from the
# intended send time), the share of requests answered 200, impressions sold
# and revenue (sum of clearing prices), and on/off ratios of the medians.
#
#   bash perf/adaptive.sh [OUT]      (default perf/out/adaptive-<time>)
#
# Env: ROUNDS (2: pairs of runs), DURATION (30 s per run), RATE (the
# scenario's 400/s), SCENARIO (perf/scenarios/adaptive-wait.toml).
# Needs jq and the release perf binary (built here if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-perf/out/adaptive-$(date +%Y%m%d-%H%M%S)}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-30}
SCENARIO=${SCENARIO:-perf/scenarios/adaptive-wait.toml}
mkdir -p "$OUT"
[ -x target/release/perf ] || cargo build --release --locked -p rtb-perf
extra=()
[ -n "${RATE:-}" ] && extra+=(--rate "$RATE")
for r in $(seq 1 "$ROUNDS"); do
  for on in true false; do
    dir="$OUT/round$r-$on"
    echo "== round $r, adaptive_wait=$on" >&2
    target/release/perf local --scenario "$SCENARIO" --adaptive-wait "$on" \
      --duration "$DURATION" "${extra[@]}" --out "$dir" > "$dir.txt"
  done
done
row() { # dir → one line of figures
  jq -r '[.latency_ms.p50, .latency_ms.p99, (.status.ok_200 / .sent * 100), .sold.imps, (.sold.revenue_micros / 1e6)]
         | @tsv' "$1/report.json"
}
{
  printf 'run\tp50_ms\tp99_ms\t200_pct\timps_sold\trevenue_cpm_sum\n'
  for r in $(seq 1 "$ROUNDS"); do
    for on in true false; do printf '%s\t%s\n' "round$r-$on" "$(row "$OUT/round$r-$on")"; done
  done
} | tee "$OUT/table.tsv" | column -t
# Ratios on/off of the sums (revenue, imps) and of the mean p50/p99 over rounds.
awk -F'\t' 'NR>1 { k = ($1 ~ /true$/) ? "on" : "off"; p50[k]+=$2; p99[k]+=$3; imps[k]+=$5; rev[k]+=$6; n[k]++ }
  END { printf "\non/off: p50 %.3f, p99 %.3f, imps sold %.4f, revenue %.4f\n",
        (p50["on"]/n["on"])/(p50["off"]/n["off"]), (p99["on"]/n["on"])/(p99["off"]/n["off"]),
        imps["on"]/imps["off"], rev["on"]/rev["off"] }' "$OUT/table.tsv" | tee "$OUT/ratios.txt"
