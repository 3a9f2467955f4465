#!/usr/bin/env bash
# Runs each fuzz target of tests/fuzz.rs for a while (default 600 s each) with fresh random
# inputs, in release mode, and reports how many cases each ran and whether any failed.
# Usage: scripts/fuzz.sh [seconds per target]
set -uo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
say() { echo "scripts/fuzz.sh: $*" >&2; }
say "building the fuzz targets (release)…"
cargo test --release --test fuzz --no-run --quiet || exit 1
failed=0
report=()
for target in bkjob_decoders the_config_reader every_api_body; do
  say "fuzzing $target for ${seconds}s per stage…"
  log=$(mktemp)
  if JOBWATCH_FUZZ_SECONDS="$seconds" cargo test --release --quiet --test fuzz "$target" -- --nocapture >"$log" 2>&1; then
    report+=("ok      $target: $(grep '^fuzz ' "$log" | sed 's/^fuzz //' | paste -sd';' -)")
  else
    failed=1
    report+=("FAILED  $target (input and reason below)")
    grep -E "failed|input:|panicked" "$log" | head -20 >&2
  fi
  rm -f "$log"
done
echo "fuzz report (${seconds}s per stage):"
printf '  %s\n' "${report[@]}"
exit "$failed"
