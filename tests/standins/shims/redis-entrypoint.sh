#!/bin/bash
# /entrypoint.sh of the real-redis test image, with the contract of redis/redis-stack-server's:
# data in /data, no protected mode, in the foreground, then the operator's $REDIS_ARGS
# (e.g. --requirepass). The server is Debian's redis 7.0 (redis-tools' multi-call binary).
set -euo pipefail
# shellcheck disable=SC2086  # REDIS_ARGS is a word list by contract
exec redis-server --dir /data --protected-mode no --daemonize no ${REDIS_ARGS:-} "$@"
