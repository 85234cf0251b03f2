"""Stage 4, render: the plan in, files out (compose.yml, config.yml, .env, RUNBOOK.md, or
Kubernetes manifests), each loaded back and checked, then written into place in one step.
"""
