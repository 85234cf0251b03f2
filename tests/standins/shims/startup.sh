#!/bin/bash
# Stand-in /startup.sh (the Albert API 0.2.0 image's CMD): the real one runs alembic migrations,
# then gunicorn on 0.0.0.0:8000. The stand-in does its postgres check itself, then serves.
set -e
exec /opt/standin/bin/python3 /opt/standin/py/albert_api.py --default-config /config.yml --host 0.0.0.0 --port 8000
