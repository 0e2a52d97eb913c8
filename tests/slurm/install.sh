#!/usr/bin/env bash
# Install the Debian packages for a one-node test SLURM (needs root; Debian 12 gives slurm-wlm 22.05).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q slurm-wlm munge
# Client commands (sbatch, sinfo) read slurm.conf even for --version, and there is none until the test writes one.
/usr/sbin/slurmctld -V
