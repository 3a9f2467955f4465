#!/usr/bin/env bash
# Installs what the tests need (when missing) and runs every test of the workspace.
# Usage: scripts/test.sh [extra nextest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

# Interpreters the local-platform tests run scripts with, and Prometheus' promtool.
missing=()
command -v bash >/dev/null || missing+=(bash)
command -v perl >/dev/null || missing+=(perl)
command -v python3 >/dev/null || missing+=(python3)
# promtool checks the /metrics exposition.
command -v promtool >/dev/null || missing+=(prometheus)
# A real Alertmanager and a real SMTP server (Debian's python3, not another interpreter on PATH)
# receive jobwatch's alerts.
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || missing+=(python3-aiosmtpd)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "scripts/test.sh: please install: ${missing[*]}" >&2
    exit 1
  fi
fi

# Doc examples first (nextest does not run doc tests), so the last line is the summary.
cargo test --workspace --doc --quiet
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
