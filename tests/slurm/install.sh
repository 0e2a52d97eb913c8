#!/usr/bin/env bash
# Install the Debian packages for a one-node test SLURM (needs root; Debian 12 gives slurm-wlm 22.05).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q slurm-wlm munge
sbatch --version
