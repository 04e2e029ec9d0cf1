"""Per-minute heart rate per device, from the 1 Hz vitals, for the cloud's patient view (SummaryMessage).

A minute is handed over once it has closed (plus a grace for readings in flight); readings that arrive for a
minute already handed over (a watch's outbox draining after it was offline) start a new part of that minute,
sent with the next summary. The cloud keys parts by (device, minute, message id) and combines them, so
nothing is counted twice and nothing late is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.messages import HrMinute

GRACE_S = 5.0


@dataclass(slots=True)
class _Acc:
    n: int = 0
    total: float = 0.0
    lo: float = float("inf")
    hi: float = float("-inf")
    ok: int = 0

    def add(self, hr: float, signal_ok: bool) -> None:
        self.n += 1
        self.total += hr
        self.lo, self.hi = min(self.lo, hr), max(self.hi, hr)
        self.ok += int(signal_ok)


def minute_of(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


class HrRollup:
    """Accumulators keyed by (patient, device, minute). Not thread-safe: the edge calls it under its lock."""

    def __init__(self) -> None:
        self._acc: dict[tuple[str, str, datetime], _Acc] = {}

    def add(self, patient_id: str, device_id: str, at: datetime, hr_bpm: float | None, signal_ok: bool) -> bool:
        """One vitals reading; False (not kept) when it has no rate."""
        if hr_bpm is None:
            return False
        self._acc.setdefault((patient_id, device_id, minute_of(at)), _Acc()).add(float(hr_bpm), signal_ok)
        return True

    def drain(self, now: datetime, *, everything: bool = False) -> dict[str, list[HrMinute]]:
        """Closed minutes per patient, removed (`everything`: open ones too, at shutdown)."""
        cutoff = now - timedelta(seconds=60 + GRACE_S)
        out: dict[str, list[HrMinute]] = {}
        for key in [k for k in self._acc if everything or k[2] <= cutoff]:
            patient_id, device_id, minute = key
            acc = self._acc.pop(key)
            mean = min(max(round(acc.total / acc.n, 2), acc.lo), acc.hi)  # rounding must not break lo ≤ mean ≤ hi
            out.setdefault(patient_id, []).append(HrMinute(
                device_id=device_id, minute=minute, n=acc.n, hr_mean=mean, hr_min=acc.lo,
                hr_max=acc.hi, signal_ok_share=round(acc.ok / acc.n, 4)))
        for minutes in out.values():
            minutes.sort(key=lambda m: (m.minute, m.device_id))
        return out

    def patients(self) -> set[str]:
        return {k[0] for k in self._acc}
