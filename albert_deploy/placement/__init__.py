"""Stage 2, placement: a Profile in, a :class:`~albert_deploy.placement.place.Placement` out.

Owns the GPU memory model, which GPU each hosted model gets, its budget and the server flags that
follow from it (vLLM's share, tensor parallelism, KV-cache length).
"""
