#!/usr/bin/env bash
# Stop the one-node SLURM started by start_local_slurm.sh (by the pids it recorded, nothing else).
set -uo pipefail
state=${1:-/tmp/virnucpro-slurm}
for name in slurmd slurmctld munged; do
  pidfile="$state/run/$name.pid"
  [ -s "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null && for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  rm -f "$pidfile"
done
echo "local SLURM stopped ($state)"
