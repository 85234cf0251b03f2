"""Stage 5, converge: the plan and its rendered files in, a running stack out.

Owns everything that talks to the Docker daemon for ``up``, ``diff``, ``down``, ``status``,
``logs`` and ``check``: containers are found by label, compared by config hash, and created,
recreated or started in dependency order.
"""
