"""Prefect flows of tgp: one per stage, and ``full_run`` that composes them."""

import os

# This machine class has no internet: Prefect's usage telemetry would only log errors.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
