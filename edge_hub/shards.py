"""Several edge hubs per site, each owning a share of its patients (`CARDIOMESH_EDGE_SHARD=i/n`).

Why by patient and not MQTT `$share` round-robin: corroboration needs every device of one patient — the watch's
alert, the phone's findings, the vitals behind the context — in the same hub. A stable hash of the pseudonymous
patient id picks the hub, so every hub agrees without talking to the others, and adding a hub moves only the
patients whose hash says so. A sharded hub learns its patients from the site's retained presence (every device
announces its patient) and from its own store, and subscribes to their topics only: the broker never sends it
another hub's traffic.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, value: str) -> Shard:
        """`"i/n"` with 0 ≤ i < n; `ValueError` otherwise."""
        try:
            index, count = (int(x) for x in value.split("/"))
        except ValueError:
            raise ValueError(f"edge shard must be i/n (e.g. 0/2), got {value!r}") from None
        if not 0 <= index < count:
            raise ValueError(f"edge shard {value!r}: need 0 ≤ i < n")
        return cls(index, count)

    def owns(self, patient_id: str | None) -> bool:
        if patient_id is None:
            return False
        digest = hashlib.sha256(patient_id.encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
