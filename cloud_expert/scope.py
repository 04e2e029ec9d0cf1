"""What a dashboard user may see of the episodes: their sites (and, when assigned, only their patients), and
drills only for an operator. One place
that every query and every check applies, so no route or action can scope differently."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select

from cloud_expert.db import Episode


@dataclass(frozen=True, slots=True)
class Scope:
    """`sites` None: every site; `patients` None: every patient of those sites; `drills_only`: an operator, who
    works with drills and never clinical data."""

    sites: tuple[str, ...] | None = None
    drills_only: bool = False
    patients: tuple[str, ...] | None = None

    def allows_site(self, site: str) -> bool:
        return self.sites is None or site in self.sites

    def allows(self, site: str, patient_id: str, *, drill: bool = False) -> bool:
        """May see this patient's data on this site (`drill`: the data is a drill's)."""
        return (self.allows_site(site) and (self.patients is None or patient_id in self.patients)
                and (drill or not self.drills_only))


EVERYTHING = Scope()

S = TypeVar("S", bound="Select[*tuple[Any, ...]]")


def scoped(stmt: S, scope: Scope) -> S:
    """`stmt` (over episodes) limited to what `scope` may see."""
    if scope.sites is not None:
        stmt = stmt.where(Episode.site.in_(scope.sites))
    if scope.patients is not None:
        stmt = stmt.where(Episode.patient_id.in_(scope.patients))
    if scope.drills_only:
        stmt = stmt.where(Episode.drill.is_(True))
    return stmt
