"""`python3 -m vllm.entrypoints.openai.api_server` in the vLLM stand-in image: the real image's
ENTRYPOINT (facts: "vllm entrypoint"); it takes `--model`."""

import sys

sys.path.insert(0, "/opt/standin/py")
import model_server

model_server.main(["vllm", *sys.argv[1:]])
