"""Instrument profiles: how one camera's headers say what a frame is.

A profile is a TOML file mapping normalised quantities (kind, filter, exposure time, gain…) to
the header keywords that carry them, plus value aliases and detector facts. Profiles inherit from
``generic.toml`` through ``base``.
"""

from tgpcore.instruments.profile import (
    InstrumentProfile,
    available_profiles,
    load_profile,
    resolve_profile,
    select_profile,
)

__all__ = ["InstrumentProfile", "available_profiles", "load_profile", "resolve_profile",
           "select_profile"]
