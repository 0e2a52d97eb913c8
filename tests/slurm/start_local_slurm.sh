#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine (slurmctld + slurmd + munged), for tests only.
#
#   tests/slurm/start_local_slurm.sh [STATE_DIR]      # default /tmp/virnucpro-slurm
#   export SLURM_CONF=$STATE_DIR/slurm.conf           # then sbatch/srun/squeue talk to it
#   tests/slurm/stop_local_slurm.sh [STATE_DIR]
#
# Needs root and Debian's packages: apt-get install slurm-wlm munge (tests/slurm/install.sh).
# Everything SLURM writes lives under STATE_DIR; only munge uses its packaged key in /etc/munge.
# Cgroup plugins are off (proctrack/linuxproc, task/none): containers rarely allow cgroup writes.
set -euo pipefail

state=${1:-/tmp/virnucpro-slurm}
host=$(hostname -s)
cpus=${SLURM_TEST_CPUS:-$(nproc)}
# Leave the OS some memory; slurmd refuses to start if RealMemory exceeds what it sees.
mem_mb=$(( $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) * 8 / 10 ))

mkdir -p "$state"/{spool/ctld,spool/d,log,run,jobs,dev}
chmod 755 "$state"
# Pseudo-GPUs (SLURM_TEST_GPUS=N, default 2): character devices aliasing /dev/null, declared as gres/gpu, so
# `--gres=gpu:1` jobs get CUDA_VISIBLE_DEVICES set by SLURM exactly as on a GPU node.
ngpu=${SLURM_TEST_GPUS:-2}
for ((i = 0; i < ngpu; i++)); do
  [ -e "$state/dev/fakegpu$i" ] || mknod "$state/dev/fakegpu$i" c 1 3
done

# munge: run our own daemon on a private socket so a system munged (if any) is left alone.
munge_sock="$state/run/munge.socket"
if ! [ -S "$munge_sock" ] || ! munge -S "$munge_sock" -n >/dev/null 2>&1; then
  mkdir -p /var/lib/munge /var/log/munge
  chown munge:munge /var/lib/munge /var/log/munge "$state/run" "$state/log"
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
      || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
  fi
  runuser -u munge -- /usr/sbin/munged --socket="$munge_sock" \
    --pid-file="$state/run/munged.pid" --log-file="$state/log/munged.log" \
    --seed-file="$state/run/munged.seed"
fi
munge -S "$munge_sock" -n | unmunge -S "$munge_sock" >/dev/null

gres_node=""
: > "$state/gres.conf"
if [ "$ngpu" -gt 0 ]; then
  gres_node="Gres=gpu:$ngpu"
  echo "AutoDetect=off" > "$state/gres.conf"
  echo "NodeName=$host Name=gpu File=$state/dev/fakegpu[0-$((ngpu - 1))]" >> "$state/gres.conf"
fi

cat > "$state/slurm.conf" <<CONF
ClusterName=virnucpro-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$munge_sock
StateSaveLocation=$state/spool/ctld
SlurmdSpoolDir=$state/spool/d
SlurmctldPidFile=$state/run/slurmctld.pid
SlurmdPidFile=$state/run/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
SlurmctldPort=${SLURM_TEST_CTLD_PORT:-6817}
SlurmdPort=${SLURM_TEST_D_PORT:-6818}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
GresTypes=gpu
NodeName=$host CPUs=$cpus RealMemory=$mem_mb ${gres_node} State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

export SLURM_CONF="$state/slurm.conf"
/usr/sbin/slurmctld -f "$SLURM_CONF"
/usr/sbin/slurmd -f "$SLURM_CONF"

# Wait until the node is schedulable.
for _ in $(seq 60); do
  st=$(sinfo -h -N -o '%t' 2>/dev/null | head -1 || true)
  case "$st" in idle|mix|alloc) echo "local SLURM up: node $host ($cpus CPUs, ${mem_mb} MB), SLURM_CONF=$SLURM_CONF"; exit 0;; esac
  sleep 1
done
echo "local SLURM did not come up; node state '${st:-none}'. Logs:" >&2
tail -n 20 "$state/log/slurmctld.log" "$state/log/slurmd.log" >&2 || true
exit 1
