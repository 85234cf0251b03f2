"""Stage after ``converge/`` and ``airgap/``: `backup` and `restore` of a running stack's databases.

In: the ``Plan`` and its running stack (found by labels) -> out: one archive (``take.py``, format
in ``archive.py``); in: an archive -> out: the data back in the stack's volumes (``restore.py``).
``stores.py`` holds each database's own online method, run inside its container.
"""
