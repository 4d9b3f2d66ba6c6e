"""Renders the repetitive files under ``deploy/`` from the code's own names, so images,
compose services, Kubernetes bases, systemd units, scrape targets and broker definitions
stay consistent with :data:`services.hallctl.topology.SERVICES` and the config keys of
:mod:`services.common.config`.

``python -m tools.deploy_render`` rewrites them; ``--check`` exits 1 when a committed file
differs from what the code implies (``tests/unit/test_deploy_files.py`` runs the same
comparison). Hand-written files (rules, docs, install.sh) are not touched. It runs from a
checkout only: it is no part of the installed distribution.
"""
