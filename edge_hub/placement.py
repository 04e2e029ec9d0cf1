"""Where a strip is read: on the paired phone (the default: the data stays closest to the wearer) or at the
edge. Pure, so every rule is tested alone; the hub logs each decision with its reason and counts it.

The edge does not wait out `analysis_timeout_s` for a phone it knows is gone: when every phone paired with the
watch has said it is offline (its retained presence, or its will on a lost connection), the edge reads the
strip at once. A phone it has never heard of is not known to be gone: the hub waits, as before.

The same holds for a phone that is there but cannot do the work in time (its fresh capabilities, from the
edge's registry): busy (it says so, or its CPU is saturated) or on a low battery and not charging. Reading a
strip costs a phone a second of CPU; the edge has mains power and the same analysis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from shared.messages import CapabilitiesPayload

#: A phone below this (and not charging) keeps its battery for the wearer: the edge reads the strip.
LOW_BATTERY_PCT = 15.0
#: A phone whose process uses more of its cores than this would read the strip late.
SATURATED_CPU = 0.9


@dataclass(frozen=True, slots=True)
class Placement:
    where: Literal["phone", "edge"]
    reason: str
    cause: str = "phone"  # a short label for the metrics: phone, offline, busy, cpu, battery


def phone_unfit(status: str | None, caps: CapabilitiesPayload | None) -> str | None:
    """Why this phone cannot read a strip now, or None when it can (or nothing says otherwise)."""
    if status == "offline":
        return "offline"
    if caps is None:
        return None
    if caps.busy:
        return "busy"
    if caps.cpu_util >= SATURATED_CPU:
        return f"cpu {caps.cpu_util:.0%}"
    if caps.battery_pct is not None and caps.battery_pct < LOW_BATTERY_PCT and caps.charging is not True:
        return f"battery {caps.battery_pct:.0f} %"
    return None


def place_strip_analysis(paired: Sequence[str], presence: Mapping[str, str], *, edge_can_read: bool,
                         capabilities: Mapping[str, CapabilitiesPayload] | None = None) -> Placement:
    """`paired`: the watch's phones (from its presence); `presence`: device → online/offline; `capabilities`:
    the fresh ones from the edge's registry (a phone absent from it is judged on its presence alone)."""
    if not edge_can_read:
        return Placement("phone", "the edge does not read strips here (edge_analysis off)")
    if not paired:
        return Placement("phone", "no phone known for this watch: waiting for findings")
    caps = capabilities or {}
    unfit = {phone: phone_unfit(presence.get(phone), caps.get(phone)) for phone in paired}
    if all(why is not None for why in unfit.values()):
        if all(why == "offline" for why in unfit.values()):
            return Placement("edge", f"paired phone{'s' if len(paired) > 1 else ''} {', '.join(paired)} offline",
                             "offline")
        cause = next(why for why in unfit.values() if why is not None and why != "offline").split()[0]
        return Placement("edge", "; ".join(f"paired phone {p} {why}" for p, why in unfit.items()), cause)
    return Placement("phone", "a paired phone is online and able (or not known otherwise)")
