"""Crash points for fault drills: a process dies (os._exit, no cleanup) at a named step of its work when
`CARDIOMESH_CRASH_AT` names it. Only the fault tests set it; unset, a crash point costs one dict lookup."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

CRASH_ENV = "CARDIOMESH_CRASH_AT"
#: The exit status of a drilled crash, so a test tells it from a real failure.
CRASH_STATUS = 86


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        log.critical("fault drill: dying at %s", name)
        os._exit(CRASH_STATUS)
