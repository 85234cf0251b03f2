#!/bin/bash
# Stand-in /entrypoint.sh of redis-stack-server: options come from $REDIS_ARGS, data in /data.
exec /opt/standin/bin/python3 /opt/standin/py/redis_server.py "$@"
