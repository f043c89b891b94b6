"""tgp: an open-cluster photometry pipeline for small and university telescopes.

``tgpcore`` is the science library. It never imports Prefect: orchestration lives in
``tasks/`` and ``flows/``.
"""

__version__ = "0.1.0"
