#!/usr/bin/env bash
# The collector check (the sample check of config.example.toml, run on each host by bk-job):
# is the log collector running, and is there room in its spool directory?
# Usage: collector_check.sh [--quick]
#   --quick   skip counting the files waiting in the spool
# Environment: COLLECTOR_PROCESS (default bkunifylogbeat), COLLECTOR_SPOOL (default
# /var/lib/gse), COLLECTOR_MAX_USE (percent, default 90).
# Exit 0: healthy; 1: a problem, each printed on its own line starting with "FAIL".
set -u
process="${COLLECTOR_PROCESS:-bkunifylogbeat}"
spool="${COLLECTOR_SPOOL:-/var/lib/gse}"
max_use="${COLLECTOR_MAX_USE:-90}"
quick=0
[ "${1:-}" = "--quick" ] && quick=1
status=0

if pgrep -x "$process" >/dev/null 2>&1; then
  echo "ok: $process is running (pid $(pgrep -x "$process" | head -n 1))"
else
  echo "FAIL: $process is not running"
  status=1
fi

if [ -d "$spool" ]; then
  use=$(df -P "$spool" | awk 'NR == 2 { sub("%", "", $5); print $5 }')
  if [ "${use:-100}" -ge "$max_use" ]; then
    echo "FAIL: $spool is ${use}% full (limit ${max_use}%)"
    status=1
  else
    echo "ok: $spool is ${use}% full"
  fi
  if [ "$quick" -eq 0 ]; then
    echo "spool files waiting: $(find "$spool" -type f 2>/dev/null | wc -l)"
  fi
else
  echo "FAIL: spool directory $spool does not exist"
  status=1
fi
exit "$status"
