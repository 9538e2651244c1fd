#!/usr/bin/env bash
# Builds the fuzz targets with cargo-fuzz (libFuzzer, stable toolchain, no
# sanitizer) and runs each one on its seed corpus.
#
#   bash fuzz/run.sh            # 20,000 inputs per target (CI runs the same bodies
#                               # on stable: exchange/tests/fuzz_smoke.rs)
#   bash fuzz/run.sh 10000000   # a number: that many inputs per target
#   bash fuzz/run.sh 300s       # a number with s: that many seconds per target
#   FUZZ_TARGETS="request event" bash fuzz/run.sh 1000   # a subset
#
# Extra libFuzzer flags can be given in FUZZ_ARGS. Exits non-zero when a
# target crashes; the crashing input is left in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"

budget=${1:-20000}
case "$budget" in
  *s) limit=(-max_total_time="${budget%s}") ;;
  *) limit=(-runs="$budget") ;;
esac
targets=${FUZZ_TARGETS:-request forward response event spool config}

export PATH="$PATH:$HOME/.cargo/bin"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> cargo install cargo-fuzz --locked"
  cargo install cargo-fuzz --locked
fi
cargo fuzz --version

# --sanitizer none: ASan needs a nightly compiler (-Zsanitizer); the targets
# contain no unsafe code, so the coverage instrumentation (stable -C flags)
# and Rust's own checks are what matter. 16 codegen units: a much faster
# build of the instrumented exchange dependencies for a small cost in speed.
build=(--sanitizer none --codegen-units 16)
cargo fuzz build "${build[@]}"
bash seed.sh

for t in $targets; do
  case "$t" in
    config) dict=corpus/config.dict ;;
    spool) dict= ;;
    *) dict=corpus/openrtb.dict ;;
  esac
  echo "==> fuzz $t (${limit[*]})"
  # -max_len: the largest seed is 2.5 KB; 8 KB leaves room and keeps it fast.
  # -rss_limit_mb/-timeout: an input that takes a gigabyte or a second is a bug.
  # shellcheck disable=SC2086
  cargo fuzz run "${build[@]}" "$t" "corpus/$t" -- \
    "${limit[@]}" -max_len=8192 -rss_limit_mb=2048 -timeout=5 \
    -print_final_stats=1 ${dict:+-dict=$dict} ${FUZZ_ARGS:-}
done
