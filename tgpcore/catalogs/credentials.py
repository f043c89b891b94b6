"""Gaia archive credentials, from the environment only; never printed, logged or stored."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

ENV_USER = "TGP_GAIA_USER"
ENV_PASSWORD = "TGP_GAIA_PASSWORD"


@dataclass(frozen=True)
class GaiaCredentials:
    """A Gaia archive login. The password never appears in ``repr``/``str``."""

    user: str
    password: str = field(repr=False)

    def __str__(self) -> str:
        return f"GaiaCredentials(user={self.user!r}, password=***)"

    def redact(self, text: str) -> str:
        """``text`` with the password (if it occurs) replaced by ``***``."""
        return text.replace(self.password, "***") if self.password else text


def gaia_credentials_from_env(environ: Mapping[str, str] | None = None) -> GaiaCredentials | None:
    """Credentials from ``TGP_GAIA_USER`` and ``TGP_GAIA_PASSWORD``, or ``None`` if unset.

    Anonymous access is enough for cone searches; a login only raises the archive's limits.
    """
    env = os.environ if environ is None else environ
    user, password = env.get(ENV_USER, "").strip(), env.get(ENV_PASSWORD, "")
    if not user or not password:
        return None
    return GaiaCredentials(user, password)
