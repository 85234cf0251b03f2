#!/bin/bash
# Stand-in ./entrypoint.sh of qdrant (WORKDIR /qdrant).
exec /opt/standin/bin/python3 /opt/standin/py/qdrant_server.py "$@"
