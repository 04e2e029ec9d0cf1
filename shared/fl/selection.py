"""Which clients train a round: only those that can afford it, and slow ones without holding the round up.

Pure, so every rule is tested alone. A device on battery below the threshold does not train (training costs
its wearer monitoring time); a busy device trains only on the charger (idle or charging, as Bonawitz et al.'s
production FL system does); a device whose model windows run over budget trains asynchronously: its update
joins if it comes in time, but the round does not wait for it. A device the edge knows nothing fresh about is
selected as before — the edge cannot exclude what it cannot see, and the device applies the same rule itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.messages import CapabilitiesPayload, SelectionPolicy


@dataclass(frozen=True, slots=True)
class TrainingChoice:
    take: bool
    mode: Literal["sync", "async"] | None  # None when not taken
    reason: str


def choose_for_training(caps: CapabilitiesPayload | None, policy: SelectionPolicy) -> TrainingChoice:
    if caps is None:
        return TrainingChoice(True, "sync", "no fresh capabilities: selected, the device decides for itself")
    charging = caps.charging is True
    if caps.battery_pct is not None and caps.battery_pct < policy.min_battery_pct and not charging:
        return TrainingChoice(False, None, f"battery {caps.battery_pct:.0f} % < {policy.min_battery_pct:.0f} % "
                                           "and not charging")
    if caps.cpu_util > policy.idle_cpu_util and not charging:
        return TrainingChoice(False, None, f"busy (cpu {caps.cpu_util:.0%} > {policy.idle_cpu_util:.0%}) "
                                           "and not charging")
    if caps.inference_ms is not None and caps.inference_ms > policy.slow_inference_ms:
        return TrainingChoice(True, "async", f"slow (model {caps.inference_ms:.0f} ms > "
                                             f"{policy.slow_inference_ms:.0f} ms): not waited for")
    return TrainingChoice(True, "sync", "idle or charging, battery sufficient")
