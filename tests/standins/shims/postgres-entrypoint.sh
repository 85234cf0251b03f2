#!/bin/bash
# Stand-in docker-entrypoint.sh of postgres:16 (`docker-entrypoint.sh postgres`).
exec /opt/standin/bin/python3 /opt/standin/py/postgres_server.py "$@"
