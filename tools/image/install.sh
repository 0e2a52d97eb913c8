#!/usr/bin/env bash
# Runs inside the image being built (both routes: Containerfile and build.sh): one venv at /opt/virnucpro with the
# runtime pins of requirements.txt and this package, no test-only packages, no pip cache, no sources left behind.
# Usage: install.sh SRC   (SRC holds requirements.txt, pyproject.toml and virnucpro/)
set -euo pipefail
src=$1
# build.sh copies in the CA bundle the host's pip trusts (a TLS-inspecting proxy); it goes with $src at the end.
if [ -f "$src/pip-ca.crt" ]; then export PIP_CERT="$src/pip-ca.crt"; fi
# Test-only pins stay out of the image: pytest runs the tests, fair-esm is only their reference implementation.
grep -vE '^(#|$|pytest==|fair-esm==)' "$src/requirements.txt" > /tmp/requirements-image.txt
python3 -m venv /opt/virnucpro
/opt/virnucpro/bin/pip install --no-cache-dir --disable-pip-version-check -q -r /tmp/requirements-image.txt
/opt/virnucpro/bin/pip install --no-cache-dir --disable-pip-version-check -q --no-deps "$src"
/opt/virnucpro/bin/virnucpro --version
/opt/virnucpro/bin/multiqc --version
rm -rf /tmp/requirements-image.txt /root/.cache "$src"
find /opt/virnucpro -name '*.pyc' -path '*/tests/*' -delete
