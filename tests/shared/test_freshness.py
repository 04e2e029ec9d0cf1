"""Replay defences on the envelope: the time window and reused sequence numbers (shared.transport.freshness)."""

from __future__ import annotations

from datetime import timedelta

from shared import topics
from shared.identity import Stamper, _Sequence
from shared.messages import AlertMessage, PresenceMessage, encode
from shared.messages.device import PresencePayload
from shared.messages.envelope import utcnow
from shared.metrics import Counters
from shared.transport import InMemoryBus, Router
from shared.transport.freshness import Freshness
from tests import factories

TOPIC = topics.alert("s", "pt-abc", "watch-1")


def _router(bus: InMemoryBus) -> tuple[list[AlertMessage], Counters]:
    counters = Counters()
    router = Router(bus.transport("t"), counters=counters, max_bytes=512 * 1024)
    got: list[AlertMessage] = []
    router.on(topics.alert("s", topics.ANY, topics.ANY), AlertMessage, lambda _p, m: got.append(m))
    return got, counters


def test_a_reused_sequence_number_under_a_new_id_is_a_replay_and_a_redelivery_is_not() -> None:
    bus = InMemoryBus()
    got, counters = _router(bus)
    original = factories.alert().model_copy(update={"seq": 41})
    sender = bus.transport("w")
    sender.publish(TOPIC, encode(original))
    sender.publish(TOPIC, encode(original))  # the broker's redelivery: the handler's id dedupe decides
    sender.publish(TOPIC, encode(original.model_copy(update={"id": "forged-id"})))
    assert [m.id for m in got] == [original.id, original.id]
    assert counters.get("rejected.replayed") == 1


def test_the_time_window_refuses_stale_and_future_envelopes_but_keeps_late_ones() -> None:
    bus = InMemoryBus()
    got, counters = _router(bus)
    now = utcnow()
    sender = bus.transport("w")
    late = factories.alert().model_copy(update={"created_at": now - timedelta(hours=3), "seq": 1})
    stale = factories.alert().model_copy(update={"created_at": now - timedelta(days=8), "seq": 2})
    future = factories.alert().model_copy(update={"created_at": now + timedelta(minutes=10), "seq": 3})
    for msg in (late, stale, future):
        sender.publish(TOPIC, encode(msg))
    assert [m.id for m in got] == [late.id]  # a watch offline for hours: late, delivered
    assert counters.get("rejected.stale") == 1 and counters.get("rejected.from_future") == 1


def test_retained_state_is_exempt_from_the_age_window() -> None:
    guard = Freshness()
    old = utcnow() - timedelta(days=60)
    presence = PresenceMessage(source="watch-1", patient_id="pt-abc", created_at=old,
                               payload=PresencePayload(role="watch", status="online"))
    assert guard.check(kind="presence", message_type="presence", source=presence.source, message_id=presence.id,
                       seq=presence.seq, created_at=presence.created_at, now=utcnow()) is None
    assert guard.check(kind="alert", message_type="alert", source="watch-1", message_id="x", seq=5,
                       created_at=old, now=utcnow()) == "stale"


def test_sequences_never_repeat_across_runs_and_are_shared_within_one() -> None:
    first, second = Stamper("edge-seq-test"), Stamper("edge-seq-test")
    a, b = first(patient_id=None)["seq"], second(patient_id=None)["seq"]
    assert b == a + 1  # one source, one sequence, however many parts of a process speak for it
    restarted = Stamper("edge-seq-test", next_seq=_Sequence())  # the same source in a new process
    assert restarted(patient_id=None)["seq"] > b
    # a restarted process starts at the microsecond clock: far above anything a previous run could reach
    assert a > 1_700_000_000 * 10**6


def test_the_guard_forgets_old_sources_and_sequences_within_its_bounds() -> None:
    guard = Freshness(per_source=3, max_sources=2)
    now = utcnow()
    for seq in range(1, 6):
        assert guard.check(kind="alert", message_type="alert", source="a", message_id=f"id{seq}", seq=seq,
                           created_at=now, now=now) is None
    assert guard.check(kind="alert", message_type="alert", source="a", message_id="other", seq=5,
                       created_at=now, now=now) == "replayed"
    for source in ("b", "c"):
        guard.check(kind="alert", message_type="alert", source=source, message_id="z", seq=1, created_at=now,
                    now=now)
    assert guard.check(kind="alert", message_type="alert", source="a", message_id="other", seq=5,
                       created_at=now, now=now) is None  # "a" was the oldest source: forgotten, bounded memory
