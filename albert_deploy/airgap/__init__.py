"""Stage 6, airgap: the plan in; images, model caches and bundles out, to move between hosts.

``pull`` fills this host, ``lock`` pins images by digest, ``bundle`` writes one archive and
``load`` restores it on a host with no network; ``offline: true`` refuses what is missing.
"""
