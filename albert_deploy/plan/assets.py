"""Files a release downloads at start, which an offline host must hold beforehand.

Albert API 0.2.0 loads tiktoken's ``o200k_base`` encoding when it starts
(etalab-ia/albert-api@0.2.0:app/utils/lifespan.py:73 -> app/helpers/_usagetokenizer.py:23-24,
``tiktoken.get_encoding("o200k_base")``), outside any ``try``: without the file the API does not start.
tiktoken 0.9.0 (pinned, etalab-ia/albert-api@0.2.0:pyproject.toml:31) reads ``$TIKTOKEN_CACHE_DIR/<sha1
of the URL>`` and uses it when its sha256 matches, else downloads it (openai/tiktoken@0.9.0:
tiktoken/load.py:34-35, :48-55); URL and sha256: tiktoken_ext/openai_public.py:95-98.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# Tests point the download at a file served on 127.0.0.1 with this variable; nothing else reads it.
URL_OVERRIDE_ENV = "ALBERT_DEPLOY_TIKTOKEN_URL"


@dataclass(frozen=True)
class ReleaseAsset:
    """One file the API reads from a volume: ``pull`` fetches it, ``bundle``/``load`` carry it, checked
    by its sha256, and ``offline: true`` refuses a host without it."""

    name: str  # what messages call it
    url: str  # where tiktoken itself would fetch it
    cache_file: str  # its name in the cache directory
    sha256: str
    volume: str  # compose volume key
    mount: str  # where the API mounts the volume
    env: str  # the variable that points the API at ``mount``: set only with ``offline: true`` (see build.py)
    user: str  # uid the API runs as: it owns the volume
    size: str  # roughly, for messages: too big for a Kubernetes ConfigMap (1 MiB)

    @property
    def path(self) -> str:
        return f"{self.mount}/{self.cache_file}"


O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
TIKTOKEN_O200K = ReleaseAsset(
    name="tiktoken o200k_base encoding",
    url=O200K_URL,
    cache_file=hashlib.sha1(O200K_URL.encode()).hexdigest(),  # fb374d41…, as tiktoken names it (load.py:48)
    sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    volume="tiktoken-cache",
    # tiktoken's own default (tempfile.gettempdir()/data-gym-cache, load.py:39-42): there a failed write is
    # ignored, so a connected host whose fresh, root-owned volume the API (uid 1100) cannot write still starts.
    mount="/tmp/data-gym-cache",
    env="TIKTOKEN_CACHE_DIR",
    user="1100",  # the image's albert user (etalab-ia/albert-api@0.2.0:app/Dockerfile:30-31,44)
    size="about 3.6 MB",
)
