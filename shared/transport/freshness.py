"""Against replay: a timestamp window and per-source sequence numbers, checked on the envelope.

Three rejections, each counted by the router under `rejected.<reason>`:

- `from_future`: stamped more than `skew_s` ahead of this clock (a forged or badly-set clock).
- `stale`: stamped more than `max_age_s` ago. The window is wide (a week by default) because a watch
  offline for hours drains its outbox late, and late clinical data is *marked* late, never dropped;
  what the window buys is a bound on how long anyone must remember an id to refuse its replay.
- `replayed`: a sequence number this source already used for a *different* message id. A verbatim
  redelivery (same id, same seq) is not a replay to this guard: the broker redelivers after a reconnect,
  and the handlers' durable id dedupe (`EdgeStore.accept_alert`, the cloud's unique keys) make it
  harmless. What an attacker would have to change to get past that dedupe is the id, and the guard
  refuses a known sequence number under a new id.

Why not "seq must grow": a restarted device replays its outbox *after* it has sent new messages, and a
message kind a watch sends rarely (an alert) arrives out of order with one it sends often; a strict
high-water mark would drop exactly the late alerts the outbox exists to deliver. Retained state
(presence, global models and their deltas, FL rounds) is exempt from the age window: it is old by design.

State is in memory and bounded (per-source rings of recent seqs); after a restart the age window and the
durable id dedupe still stand. Sequences come from `shared.identity.Stamper`, which starts each run at
the microsecond clock, so a restarted device never reuses a sequence number of its previous run.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime

from shared.messages.codec import RejectReason

#: Topic kinds whose messages are retained state rather than events: old by design.
RETAINED_KINDS = frozenset({"presence", "capabilities", "fl_model", "fl_model_delta", "fl_round"})

DEFAULT_MAX_AGE_S = 7 * 24 * 3600.0
DEFAULT_SKEW_S = 300.0


class Freshness:
    """Refuses envelopes outside the time window and reused sequence numbers; one per router."""

    def __init__(self, *, max_age_s: float = DEFAULT_MAX_AGE_S, skew_s: float = DEFAULT_SKEW_S,
                 per_source: int = 4096, max_sources: int = 10_000) -> None:
        self.max_age_s = max_age_s
        self.skew_s = skew_s
        self._per_source = per_source
        self._max_sources = max_sources
        #: (source, type) → its recent sequence numbers and the message id each came with
        self._sources: OrderedDict[tuple[str, str], OrderedDict[int, str]] = OrderedDict()

    def check(self, *, kind: str, message_type: str, source: str, message_id: str, seq: int,
              created_at: datetime, now: datetime) -> RejectReason | None:
        """The rejection reason, or None when the message may go on. Records the (seq, id) it lets through."""
        age_s = (now - created_at).total_seconds()
        if age_s < -self.skew_s:
            return "from_future"
        if kind in RETAINED_KINDS:
            return None
        if age_s > self.max_age_s:
            return "stale"
        if seq <= 0:  # an unsequenced producer (older firmware): the window and the id dedupe still apply
            return None
        # keyed by type as well: two processes may speak for one source (a watch and its trainer)
        key = (source, message_type)
        ids = self._sources.get(key)
        if ids is None:
            ids = self._sources[key] = OrderedDict()
            if len(self._sources) > self._max_sources:
                self._sources.popitem(last=False)
        else:
            self._sources.move_to_end(key)
        known = ids.get(seq)
        if known is not None:
            return None if known == message_id else "replayed"
        ids[seq] = message_id
        if len(ids) > self._per_source:
            ids.popitem(last=False)
        return None
