#!/usr/bin/env bash
# The load harness, end to end: installs wrk when missing (Debian), builds the release
# binaries, runs crates/jobwatch-bench (about 3–4 minutes on a 2-core machine, plus the
# build), prints a table and one JSON line. Arguments go to jobwatch-bench (--help).
# The micro-benchmarks are separate: `cargo bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends wrk
  else
    echo "scripts/bench.sh: please install wrk" >&2
    exit 1
  fi
fi
cargo build --release --quiet -p jobwatch -p jobwatch-bench
exec ./target/release/jobwatch-bench "$@"
