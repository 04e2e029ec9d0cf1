"""What a dashboard user may see of the episodes: their sites, and drills only for an operator. One place
that every query and every check applies, so no route or action can scope differently."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select

from cloud_expert.db import Episode


@dataclass(frozen=True, slots=True)
class Scope:
    """`sites` None: every site; `drills_only`: an operator, who works with drills and never clinical data."""

    sites: tuple[str, ...] | None = None
    drills_only: bool = False

    def allows_site(self, site: str) -> bool:
        return self.sites is None or site in self.sites


EVERYTHING = Scope()

S = TypeVar("S", bound="Select[*tuple[Any, ...]]")


def scoped(stmt: S, scope: Scope) -> S:
    """`stmt` (over episodes) limited to what `scope` may see."""
    if scope.sites is not None:
        stmt = stmt.where(Episode.site.in_(scope.sites))
    if scope.drills_only:
        stmt = stmt.where(Episode.drill.is_(True))
    return stmt
