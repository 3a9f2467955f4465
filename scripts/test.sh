#!/usr/bin/env bash
# Installs what the tests need (when missing) and runs every test of the workspace.
# Usage: scripts/test.sh [extra nextest arguments]
#        scripts/test.sh --install-only
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "scripts/test.sh: $*" >&2; }

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
# A real PostgreSQL 15 (server binaries only: each test starts its own throwaway cluster, as
# the `postgres` user, on a free loopback port) for the several-replicas tests.
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
command -v runuser >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "please install: ${missing[*]}"
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # The tests start their own Prometheus and Alertmanager: the packages' system services are
  # neither started (policy-rc.d answers "not now") nor left enabled.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  say "installing Debian packages: ${missing[*]} (apt-get; a minute or two)…"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  for unit in prometheus prometheus-alertmanager postgresql; do
    if command -v deb-systemd-helper >/dev/null; then
      deb-systemd-helper disable "$unit.service" >/dev/null 2>&1 || true
    fi
    if [ -e "/etc/init.d/$unit" ] && command -v update-rc.d >/dev/null; then
      update-rc.d "$unit" disable >/dev/null 2>&1 || true
    fi
  done
  say "installed."
fi
if [ "${1:-}" = "--install-only" ]; then
  exit 0
fi

# Doc examples first (nextest does not run doc tests), so the last line is the summary.
say "building and running the doc tests (the first build takes a few minutes)…"
cargo test --workspace --doc --quiet
say "building and running every test…"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
