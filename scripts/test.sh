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
# A real browser for the console's pages (headless, driven over the DevTools protocol), and
# fonts for the Chinese status labels in its screenshots.
command -v chromium >/dev/null || missing+=(chromium)
[ -d /usr/share/fonts/opentype/noto ] || missing+=(fonts-noto-cjk)
# openssl makes the certificates of the HTTPS listener's tests.
command -v openssl >/dev/null || missing+=(openssl)
# Debian's Python with venv, for the virtualenv Salt is installed into (below).
/usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
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
# A real Salt (salt-master, salt-api, salt-minion) for the Salt conformance tests: from PyPI,
# pinned (newer releases need a certifi the registry lacks: ../shared/reference/salt/API.md
# §1), in a virtualenv of its own, built once (about a minute) and reused.
salt_venv="${JOBWATCH_SALT_VENV:-$PWD/target/salt-venv}"
if [ ! -x "$salt_venv/bin/salt-api" ] || ! "$salt_venv/bin/python" -c 'import salt, cherrypy' 2>/dev/null; then
  say "installing Salt 3008.3 and CherryPy into $salt_venv (pip; about a minute)…"
  rm -rf "$salt_venv"
  /usr/bin/python3 -m venv "$salt_venv"
  "$salt_venv/bin/pip" install --quiet --disable-pip-version-check 'salt==3008.3' cherrypy
  say "Salt installed."
fi
export JOBWATCH_SALT_VENV="$salt_venv"
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
