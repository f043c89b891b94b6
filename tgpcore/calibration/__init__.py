"""Calibration: the plan (which master each frame uses), masters, application, cosmic rays."""

from tgpcore.calibration.plan import CalibrationPlan, MasterSpec, PlanEntry, build_plan, load_rules

__all__ = ["CalibrationPlan", "MasterSpec", "PlanEntry", "build_plan", "load_rules"]
