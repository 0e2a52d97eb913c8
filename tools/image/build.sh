#!/usr/bin/env bash
# `make image`: the pipeline's container image, built from this repository without any image registry.
#   a Debian 12 root filesystem from Debian's own packages (mmdebstrap), the runtime pins of requirements.txt and
#   this package from PyPI (tools/image/install.sh, the same script the Containerfile runs), imported with podman.
# Usage: tools/image/build.sh [TAG]     (default TAG: virnucpro:<package version>; needs root, mmdebstrap, podman)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$repo/virnucpro/__init__.py")
tag=${1:-virnucpro:$version}
for tool in mmdebstrap podman; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool not found: apt-get install mmdebstrap podman runc" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/var/tmp}/virnucpro-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
step() { echo "build.sh: $1 ($(( $(date +%s) - start )) s)"; }
start=$(date +%s)

# procps: Nextflow's task wrapper reads task metrics with ps.
mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,procps bookworm "$rootfs"
rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
step "Debian 12 root filesystem made"

# Only what the image needs from the checkout (no tests, models, venv or caches).
mkdir -p "$rootfs/src/tools/image"
cp "$repo/requirements.txt" "$repo/pyproject.toml" "$rootfs/src/"
cp "$repo/tools/image/install.sh" "$rootfs/src/tools/image/"
tar -C "$repo" --exclude=__pycache__ -cf - virnucpro | tar -C "$rootfs/src" -xf -
# A site that reaches PyPI through a TLS-inspecting proxy trusts its CA through PIP_CERT or pip.conf's `cert`;
# the build uses the same bundle, and it leaves the image with /src.
ca=${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || true)}
if [ -n "$ca" ] && [ -f "$ca" ]; then cp "$ca" "$rootfs/src/pip-ca.crt"; fi
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
# A clean environment: none of the host's pip or proxy settings leak into the image.
chroot "$rootfs" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root bash /src/tools/image/install.sh /src
: > "$rootfs/etc/resolv.conf"
step "Python packages installed"

# The NVIDIA variables tell the NVIDIA container toolkit to hand the GPUs and the driver's compute libraries in
# (torch's wheels bring the CUDA runtime).
tar -C "$rootfs" --numeric-owner -cf - . | podman import --quiet \
  --change 'ENV PATH=/opt/virnucpro/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV NVIDIA_VISIBLE_DEVICES=all' \
  --change 'ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility' \
  --change 'ENV PYTHONNOUSERSITE=1' \
  --change 'CMD ["/bin/bash"]' \
  --change "LABEL org.opencontainers.image.title=virnucpro org.opencontainers.image.version=$version" \
  - "$tag" >/dev/null
size=$(podman image inspect --format '{{.Size}}' "$tag")
step "imported as $tag, $(( size / 1048576 )) MiB"
