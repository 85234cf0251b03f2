"""`python3 -m vllm.entrypoints.openai.api_server` in the vLLM stand-in image: the older entrypoint."""

import sys

sys.path.insert(0, "/opt/standin/py")
import model_server

model_server.main(["vllm", *sys.argv[1:]])
