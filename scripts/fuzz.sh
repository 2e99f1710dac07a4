#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets) for SECONDS each (default 20) on nightly
# with AddressSanitizer, starting from the seeds in fuzz/corpus/<target> (copied: new corpus
# entries stay out of the repository). A crash leaves its input in fuzz/artifacts/<target>/
# and fails the run; replay it with `cargo +nightly fuzz run --fuzz-dir fuzz TARGET FILE`.
# The same entry points run on stable in tests/tests/fuzz_smoke.rs.
# CI builds the targets unoptimized (`--dev`: a much shorter build on 2 cores, fewer runs per
# second); FUZZ_RELEASE=1 builds them optimized for long runs.
set -euo pipefail
SECONDS_EACH=${1:-20}
cd "$(dirname "$0")/.."
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "installing the nightly toolchain (cargo-fuzz needs it)"
  rustup toolchain install nightly --profile minimal
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for t in bundle_loader template webhook_verify api_request; do
  work=$(mktemp -d)
  cp fuzz/corpus/"$t"/* "$work"/
  echo "--- fuzz $t for ${SECONDS_EACH}s"
  log="$work.log"
  status=0
  mode=(--dev)
  [ "${FUZZ_RELEASE:-0}" = 1 ] && mode=()
  cargo +nightly fuzz run "${mode[@]}" --fuzz-dir fuzz "$t" "$work" -- \
    -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E "^(Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY)|panicked" "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -40 "$log"
    echo "fuzz target $t failed (exit $status); its input is in fuzz/artifacts/$t/"
    exit 1
  fi
  rm -rf "$work"
done
