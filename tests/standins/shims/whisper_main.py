"""/home/whisper/app/main.py in the whisper stand-in image: `python3 app/main.py --model M --port P`."""

import sys

sys.path.insert(0, "/opt/standin/py")
import model_server

model_server.main(["whisper", *sys.argv[1:]])
