#!/usr/bin/env bash
# Reproduces every figure in perf/RESULTS.md in one run on one machine:
# saturation (exchange and the bare-hyper baseline, same scenario), exchange
# overhead at half saturation, deadline adherence, and a cross-check of one
# rate with an independent load generator (oha).
#
#   bash perf/bench.sh [OUT_DIR]        # default perf/out/bench-<timestamp>
#
# Needs a release build (done here) and, for the cross-check, `oha`
# (`cargo install oha --locked`); without it that part is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-perf/out/bench-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$out"
cargo build --release --bins -q
perf=target/release/perf
sat=perf/scenarios/saturation-8-bidders.toml
rates=${RATES:-"200 400 600 800 1000 1200"}
step_s=${STEP_S:-6}

summary() { # report.json -> one line of figures
  jq -r '[.mode, .planned_rate, (.answered_rate|floor), .status.shed_503, .latency_ms.p50, .latency_ms.p99,
          .latency_ms.p999, ((.exchange_cpu_us_per_auction // 0)|floor)] | @tsv' "$1"
}

echo "== saturation: 8 bidders, constant rate steps of ${step_s}s (mode rate answered/s shed p50 p99 p99.9 cpu_us)"
for rate in $rates; do
  for mode in exchange baseline; do
    flag=""; [ "$mode" = baseline ] && flag="--baseline"
    $perf local --scenario "$sat" --rate "$rate" --duration "$step_s" $flag --out "$out/sat-$mode-$rate" >/dev/null 2>&1 || true
    summary "$out/sat-$mode-$rate/report.json" | tee -a "$out/saturation.tsv"
  done
done

# Half of the highest rate the exchange sustained with p99 <= 120 ms and no shedding.
best=$(awk -F'\t' '$1=="local" && $4==0 && $6<=120 && $3>=0.95*$2 {r=$2} END {print r+0}' "$out/saturation.tsv")
half=$(( ${best%.*} / 2 ))
[ "$half" -gt 0 ] || half=100
echo "== overhead at half saturation: ${half}/s (exchange-side stages, ms)"
$perf local --scenario "$sat" --rate "$half" --duration 10 --out "$out/overhead" >/dev/null 2>&1
jq -r '.exchange_stages | to_entries[] | [.key, .value.last_5m.p50_ms, .value.last_5m.p99_ms, .value.last_5m.p999_ms] | @tsv' \
  "$out/overhead/report.json" | tee "$out/overhead.tsv"
$perf local --scenario "$sat" --rate "$half" --duration 10 --baseline --out "$out/overhead-baseline" >/dev/null 2>&1
summary "$out/overhead/report.json"
summary "$out/overhead-baseline/report.json"

echo "== deadline adherence: one bidder hangs, one answers just after the deadline"
$perf local --scenario perf/scenarios/deadline-hang.toml --out "$out/deadline" >/dev/null 2>&1 || true
jq -r '"within tmax: \(.within_goal_share*100)% of \(.sent); p99 \(.latency_ms.p99) ms; statuses \(.status)"' "$out/deadline/report.json"

echo "== cross-check with oha at 200/s (exchange and bidders as separate processes)"
if command -v oha >/dev/null 2>&1; then
  pids=()
  trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
  for i in 1 2 3 4 5 6 7 8; do
    target/release/bidder serve --listen 127.0.0.1:0 --seat "b$i" --price "$i" --latency lognormal:10:0.4 \
      > "$out/bidder-$i.out" 2>/dev/null & pids+=($!)
  done
  sleep 1
  cfg="$out/exchange.toml"
  echo '[auction]' > "$cfg"
  for i in 1 2 3 4 5 6 7 8; do
    url=$(sed -n 's/.*listening on //p' "$out/bidder-$i.out")
    printf '[[bidders]]\nname = "b%s"\nendpoints = ["%s"]\n' "$i" "$url" >> "$cfg"
  done
  target/release/exchange serve --config "$cfg" --listen 127.0.0.1:18080 > /dev/null 2>&1 & pids+=($!)
  sleep 1
  body="$out/request.json"
  cp ../shared/corpus/openrtb/requests/valid/pbs-simple.json "$body" 2>/dev/null ||
    echo '{"id":"x","imp":[{"id":"1","banner":{"w":300,"h":250}}],"tmax":120}' > "$body"
  oha --no-tui --http2 --latency-correction -q 200 -z 10s -m POST -H 'content-type: application/json' -D "$body" \
    --output-format json http://127.0.0.1:18080/openrtb2/auction > "$out/oha.json"
  jq -r '"oha:  p50 \(.latencyPercentiles.p50*1000) ms  p99 \(.latencyPercentiles.p99*1000) ms  rps \(.summary.requestsPerSec)"' "$out/oha.json"
  printf 'name = "oha-crosscheck"\ndescription = "same body as oha"\ngoal = "compare"\n[load]\nrate = 200\nduration_s = 10\nprotocol = "http2"\nconnections = 1\n[requests]\nreplay_dir = "%s"\n' \
    "$(mktemp -d)" > "$out/crosscheck.toml"
  cp "$body" "$(sed -n 's/^replay_dir = "\(.*\)"/\1/p' "$out/crosscheck.toml")/"
  $perf run --target http://127.0.0.1:18080/openrtb2/auction --scenario "$out/crosscheck.toml" --out "$out/crosscheck" >/dev/null 2>&1
  jq -r '"perf: p50 \(.latency_ms.p50) ms  p99 \(.latency_ms.p99) ms  rps \(.answered_rate)"' "$out/crosscheck/report.json"
else
  echo "oha not installed: cross-check skipped (cargo install oha --locked)"
fi
echo "== results in $out"
