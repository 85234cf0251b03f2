"""Stage 3, plan: a Profile and its Placement in, one typed plan out (every service and endpoint).

After this stage nothing reads the profile again: every target (compose, config, Kubernetes,
runbook, pull, bundle, up) reads the plan. ``releases/`` holds what differs per Albert API release.
"""
