"""Task wrappers of the calibration stage: one task per master, one per science frame."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tgpcore.calibration.products import make_calibrated, make_master


@task(name="build-master", cache_policy=NO_CACHE, description="Combine one master bias, dark or flat")
def build_master_task(kind: str, key: str, members: list[dict[str, Any]], out_path: str,
                      bias_path: str | None = None, dark_path: str | None = None,
                      threads: int = 1) -> dict[str, Any]:
    """Run :func:`tgpcore.calibration.products.make_master`."""
    return make_master(kind, key, members, out_path, bias_path, dark_path, threads)


@task(name="calibrate-frame", cache_policy=NO_CACHE, description="Calibrate one science frame")
def calibrate_frame_task(frame: dict[str, Any], out_path: str, bias_path: str | None,
                         dark_path: str | None, flat_path: str | None,
                         cosmic_rays: bool = True) -> dict[str, Any]:
    """Run :func:`tgpcore.calibration.products.make_calibrated`."""
    return make_calibrated(frame, out_path, bias_path, dark_path, flat_path, cosmic_rays)
