#!/usr/bin/env bash
# Stop the daemons started by start_local_slurm.sh, by the PIDs in their pid files
# only (never by name). Packages and config stay.
#   --purge   also remove job/node state and logs, so the next start is from scratch.
set -uo pipefail
log() { echo "[stop_local_slurm] $*"; }

# Cancel the cluster's jobs first so that no slurmstepd is left behind.
if [ -s /run/slurmctld.pid ] && kill -0 "$(cat /run/slurmctld.pid)" 2>/dev/null; then
  scancel --user=root --full 2>/dev/null || true
  for _ in $(seq 40); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.25; done
fi

stop_pidfile() {  # stop_pidfile NAME PIDFILE
  local name="$1" pf="$2" pid
  [ -s "$pf" ] || { log "$name: no pid file"; return 0; }
  pid="$(cat "$pf")"
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name (pid $pid)"
    kill "$pid"
    for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then log "$name did not exit, SIGKILL"; kill -9 "$pid"; fi
  else
    log "$name: not running"
  fi
  rm -f "$pf"
}

stop_pidfile slurmd    /run/slurmd.pid
stop_pidfile slurmctld /run/slurmctld.pid
stop_pidfile munged    /run/munge/munged.pid

if [ "${1:-}" = "--purge" ]; then
  log "purging state and logs"
  rm -rf /var/spool/slurmctld/* /var/spool/slurmd/* /var/log/slurm/*
fi
