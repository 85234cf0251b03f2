#!/bin/bash
# Stand-in /startup.sh of the playground 0.2.0 image (scripts/startup_ui.sh at 0.2.0): the same
# variables and order (migrations, then Streamlit on 8501), run by the stand-in.
set -e
MAX_UPLOAD_SIZE=${MAX_UPLOAD_SIZE:-20}
STREAMLIT_CMD_ARGS=${STREAMLIT_CMD_ARGS:-""}
/opt/standin/bin/python3 /opt/standin/py/playground_ui.py migrate
exec streamlit run /ui/main.py --server.port=8501 --browser.gatherUsageStats false --theme.base=light \
  --server.maxUploadSize=$MAX_UPLOAD_SIZE $STREAMLIT_CMD_ARGS
