"""The Kubernetes target: plan -> manifests (workloads.py, objects.py), checked (check.py), written (render.py)."""
