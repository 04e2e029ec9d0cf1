"""Where a strip is read: on the paired phone (the default: the data stays closest to the wearer) or at the
edge. Pure, so every rule is tested alone; the hub logs each decision with its reason and counts it.

The edge does not wait out `analysis_timeout_s` for a phone it knows is gone: when every phone paired with the
watch has said it is offline (its retained presence, or its will on a lost connection), the edge reads the
strip at once. A phone it has never heard of is not known to be gone: the hub waits, as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Placement:
    where: Literal["phone", "edge"]
    reason: str


def place_strip_analysis(paired: Sequence[str], presence: Mapping[str, str], *, edge_can_read: bool) -> Placement:
    """`paired`: the watch's phones (from its presence); `presence`: device → online/offline."""
    if not edge_can_read:
        return Placement("phone", "the edge does not read strips here (edge_analysis off)")
    if not paired:
        return Placement("phone", "no phone known for this watch: waiting for findings")
    if all(presence.get(phone) == "offline" for phone in paired):
        return Placement("edge", f"paired phone{'s' if len(paired) > 1 else ''} {', '.join(paired)} offline")
    return Placement("phone", "a paired phone is online (or not known to be offline)")
