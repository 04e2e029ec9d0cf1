"""An alert is done when its edge says it holds it: until then the watch sends the same bytes again."""

from __future__ import annotations

import time
from pathlib import Path

from edge_hub.app import EdgeHub
from edge_hub.store import EdgeStore
from shared import topics
from shared.ecg.signal import MODEL_FS
from shared.ecg.sources import SyntheticEpisode, synthetic
from shared.messages import CommandMessage, CommandPayload, encode
from shared.settings import Settings
from shared.transport import InMemoryBus
from watch_agent.app import WatchAgent, WatchConfig
from watch_agent.awaiting import AwaitingAnswers
from watch_agent.replay import Replay

SITE = "s"


def _watch(bus: InMemoryBus, awaiting: AwaitingAnswers) -> WatchAgent:
    config = WatchConfig(device_id="watch-1", patient_id="pt-1", phone_id="phone-1", stream_ref="synthetic")
    signal = synthetic(40.0, MODEL_FS, episodes=[SyntheticEpisode("pause", 20.0, 4.0)], seed=5)
    agent = WatchAgent(Settings(site=SITE, data_dir=None), bus.transport("watch-1"), config, Replay(signal, loop=False),
                       awaiting=awaiting)
    agent.start(run=False)
    return agent


def _run(agent: WatchAgent) -> None:
    while (chunk := agent.replay.next_chunk()) is not None:
        agent.process(chunk)


def _alerts(bus: InMemoryBus) -> list[bytes]:
    return [p for t, p, *_ in bus.published if t.endswith("/alert")]


def test_an_unanswered_alert_is_sent_again_with_the_same_bytes_until_answered(tmp_path: Path) -> None:
    bus = InMemoryBus()
    awaiting = AwaitingAnswers(tmp_path / "awaiting.db", first_resend_s=30)
    watch = _watch(bus, awaiting)
    try:
        _run(watch)  # no edge on this bus: nobody answers
        first = _alerts(bus)
        assert len(first) == 1 and len(awaiting) == 1
        now = time.time()
        assert watch.resend_due(now + 10) == 0  # not yet
        assert watch.resend_due(now + 31) == 1 and _alerts(bus) == first * 2  # identical: the hub dedupes by id
        assert watch.resend_due(now + 61) == 0 and watch.resend_due(now + 92) == 1  # backing off: 30 s, 60 s, …
        alert_id = awaiting.due(now + 10**5)[0][0].alert_id
        ack = CommandMessage(source="edge-1", patient_id="pt-1", seq=1,
                             payload=CommandPayload(command="alert_received", alert_id=alert_id, target="watch-1"))
        bus.transport("edge").publish(topics.cmd(SITE, "pt-1", "watch-1"), encode(ack))
        assert len(awaiting) == 0 and watch.counters.get("alerts.answered") == 1
        assert watch.counters.get("alerts.resent") == 2
    finally:
        watch.stop()


def test_an_alert_the_hub_holds_is_not_awaited_and_a_restart_resends_what_was(tmp_path: Path) -> None:
    bus = InMemoryBus()
    hub = EdgeHub(Settings(site=SITE, state_dir=tmp_path, edge_analysis=False), bus.transport("edge"),
                  store=EdgeStore(tmp_path / "edge.db"))
    hub.start()
    watch = _watch(bus, AwaitingAnswers(tmp_path / "awaiting.db"))
    try:
        _run(watch)
        assert len(_alerts(bus)) == 1 and len(watch.awaiting) == 0 and watch.counters.get("alerts.answered") == 1
    finally:
        watch.stop()
        hub.stop()
    # a watch that died with an alert unanswered sends it again after its restart
    left = AwaitingAnswers(tmp_path / "left.db", first_resend_s=0)
    left.add("a-1", topics.alert(SITE, "pt-1", "watch-1"), b"{}")
    left.close()
    bus = InMemoryBus()
    restarted = _watch(bus, AwaitingAnswers(tmp_path / "left.db", first_resend_s=0))
    try:
        assert restarted.resend_due() == 1 and _alerts(bus) == [b"{}"]
    finally:
        restarted.stop()


def test_an_alert_too_old_for_the_bus_is_given_up_loudly(tmp_path: Path) -> None:
    awaiting = AwaitingAnswers(tmp_path / "a.db", give_up_s=100)
    awaiting.add("a-old", "t", b"{}", now=1000.0)
    awaiting.add("a-new", "t", b"{}", now=1090.0)
    again, expired = awaiting.due(now=1150.0)
    assert expired == ["a-old"] and [r.alert_id for r in again] == ["a-new"] and len(awaiting) == 1
