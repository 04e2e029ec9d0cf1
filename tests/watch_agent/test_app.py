"""The watch's wiring on the in-memory bus: alerts with strips, vitals, commands, drills, bad commands."""

from __future__ import annotations

import numpy as np
import pytest

from shared import topics
from shared.ecg.signal import MODEL_FS
from shared.ecg.sources import SyntheticEpisode, synthetic
from shared.messages import (
    AlertMessage,
    CapabilitiesMessage,
    CommandMessage,
    CommandPayload,
    VitalsMessage,
    decode,
    encode,
)
from shared.settings import Settings
from shared.transport import InMemoryBus
from watch_agent.app import WatchAgent, WatchConfig
from watch_agent.replay import Chunk, Replay, SourceError, open_source

SITE = "s"


def _watch(signal_episodes: list[SyntheticEpisode], seconds: float = 60.0) -> tuple[WatchAgent, InMemoryBus]:
    bus = InMemoryBus()
    signal = synthetic(seconds, MODEL_FS, episodes=signal_episodes, seed=5)
    config = WatchConfig(device_id="watch-1", patient_id="pt-1", phone_id="phone-1", stream_ref="synthetic")
    agent = WatchAgent(Settings(site=SITE, data_dir=None), bus.transport("watch-1"), config,
                       Replay(signal, loop=False))
    agent.start(run=False)
    return agent, bus


def _drain(agent: WatchAgent) -> None:
    while (chunk := agent.replay.next_chunk()) is not None:
        agent.process(chunk)


def _messages(bus: InMemoryBus, kind: str) -> list:
    return [decode(p, max_bytes=1 << 22) for t, p, *_ in bus.published if t.endswith("/" + kind)]


def test_pause_raises_one_alert_with_a_strip_of_context() -> None:
    agent, bus = _watch([SyntheticEpisode("pause", 30.0, 4.0)])
    _drain(agent)
    alerts = _messages(bus, "alert")
    assert [a.payload.kind for a in alerts] == ["pause"]
    alert = alerts[0]
    assert isinstance(alert, AlertMessage) and not alert.drill and alert.trace_id == alert.payload.alert_id
    strip = alert.payload.strip
    assert strip.fs == MODEL_FS and 10.0 <= strip.duration_s <= 30.0
    assert strip.t0_s <= alert.payload.onset_s <= strip.t0_s + strip.duration_s
    assert alert.seq >= 1 and alert.payload.stream_ref == "synthetic"


def test_vitals_once_per_stream_second_with_heart_rate() -> None:
    agent, bus = _watch([], seconds=20.0)
    _drain(agent)
    vitals = _messages(bus, "vitals")
    assert 18 <= len(vitals) <= 21
    assert all(isinstance(v, VitalsMessage) for v in vitals)
    late = [v.payload.hr_bpm for v in vitals[-5:]]
    assert all(hr is not None and 55 < hr < 90 for hr in late)


def _command(bus: InMemoryBus, payload: CommandPayload, *, drill: bool = False, trace: str = "t1") -> None:
    msg = CommandMessage(source="edge-1", patient_id="pt-1", drill=drill, trace_id=trace, payload=payload)
    bus.transport("edge").publish(topics.cmd(SITE, "pt-1", "watch-1"), encode(msg))


def test_drill_splice_marks_every_alert_and_leaves_clinical_stream_clean() -> None:
    agent, bus = _watch([], seconds=120.0)
    for _ in range(50):  # 10 s of normal rhythm first
        agent.process(agent.replay.next_chunk())  # type: ignore[arg-type]
    _command(bus, CommandPayload(command="drill_inject", scenario="pause"), drill=True, trace="drill-trace-1")
    _drain(agent)
    alerts = _messages(bus, "alert")
    assert alerts and all(a.drill and a.trace_id == "drill-trace-1" for a in alerts)
    assert {a.payload.kind for a in alerts} == {"pause"}


@pytest.mark.parametrize("second", ["asystole", "pause"])
def test_back_to_back_drills_each_alert(second: str) -> None:
    """A drill asked for as soon as the previous one is answered (its segment and grace still playing) waits
    for the detector to start afresh and learn the rhythm again: a pause in its first beats would go unseen."""
    agent, bus = _watch([], seconds=240.0)
    for _ in range(50):
        agent.process(agent.replay.next_chunk())  # type: ignore[arg-type]
    _command(bus, CommandPayload(command="drill_inject", scenario="pause"), drill=True, trace="first")
    while not any(a.trace_id == "first" for a in _messages(bus, "alert")):
        agent.process(agent.replay.next_chunk())  # type: ignore[arg-type]
    _command(bus, CommandPayload(command="drill_inject", scenario=second), drill=True,
             trace="second")
    _drain(agent)
    alerts = _messages(bus, "alert")
    assert {a.trace_id for a in alerts} == {"first", "second"}
    assert all(a.drill for a in alerts)
    # on the stream's clock, not the restarted detector's: each strip holds its own onset and ends at detection
    first = next(a for a in alerts if a.trace_id == "first")
    later = next(a for a in alerts if a.trace_id == "second")
    assert later.payload.onset_s > first.payload.detected_s
    for a in alerts:
        strip = a.payload.strip
        assert strip.t0_s <= a.payload.onset_s <= strip.t0_s + strip.duration_s
        assert strip.t0_s + strip.duration_s == pytest.approx(a.payload.detected_s, abs=0.25)


def test_a_drill_waits_for_a_strips_worth_of_signal() -> None:
    """Injected the moment the watch starts, the drill still alerts with a full strip the phone can read."""
    agent, bus = _watch([], seconds=120.0)
    _command(bus, CommandPayload(command="drill_inject", scenario="vt"), drill=True, trace="drill-early")
    first_drill_t0 = None
    while (chunk := agent.replay.next_chunk()) is not None:
        if chunk.drill_trace is not None and first_drill_t0 is None:
            first_drill_t0 = chunk.t0_s
        agent.process(chunk)
    assert first_drill_t0 == pytest.approx(agent.config.strip_min_s)
    alerts = _messages(bus, "alert")
    assert alerts and all(a.drill and a.trace_id == "drill-early" for a in alerts)
    assert alerts[0].payload.strip.duration_s >= agent.config.strip_min_s


def test_replay_holds_a_splice_until_its_time_then_plays_it_whole() -> None:
    signal = synthetic(30.0, MODEL_FS, seed=1)
    replay = Replay(signal, chunk_s=0.3, loop=False)
    drill = np.arange(100, dtype=float)
    replay.splice(drill, "t", not_before_s=1.0)
    chunks: list[Chunk] = []
    while (chunk := replay.next_chunk()) is not None and len(chunks) < 20:
        chunks.append(chunk)
    spliced = [c for c in chunks if c.drill_trace == "t"]
    assert spliced[0].t0_s == pytest.approx(1.0)  # exactly on time, even though 1.0 s is not a whole chunk
    np.testing.assert_array_equal(np.concatenate([c.samples_mv for c in spliced]), drill)
    before = [c for c in chunks if c.t0_s < 1.0]
    assert all(c.drill_trace is None for c in before)
    assert sum(len(c.samples_mv) for c in before) == round(1.0 * MODEL_FS)
    late = Replay(signal, chunk_s=0.3, loop=False)
    for _ in range(10):
        late.next_chunk()
    late.splice(drill, "u", not_before_s=1.0)  # asked after its time: plays at once
    nxt = late.next_chunk()
    assert nxt is not None and nxt.drill_trace == "u" and nxt.t0_s == pytest.approx(3.0)


def test_drill_command_without_drill_flag_is_refused() -> None:
    agent, bus = _watch([], seconds=30.0)
    _command(bus, CommandPayload(command="drill_inject", scenario="vt"), drill=False)
    _drain(agent)
    assert _messages(bus, "alert") == []
    assert agent.counters.get("rejected.drill_not_marked") == 1


def test_stream_strip_and_notify_commands() -> None:
    agent, bus = _watch([], seconds=20.0)
    _command(bus, CommandPayload(command="notify_wearer", level="urgent"))
    _command(bus, CommandPayload(command="stream_strip", duration_s=6.0))
    _drain(agent)
    strips = _messages(bus, "strip")
    assert agent.wearer_notifications == 1
    assert 2 <= len(strips) <= 4 and all(s.payload.strip.duration_s == pytest.approx(2.0, abs=0.25) for s in strips)


def test_a_repeated_command_for_one_alert_notifies_the_wearer_once() -> None:
    """Commands are at-least-once (an edge retrying an alert re-sends them): one alert, one notification."""
    agent, bus = _watch([], seconds=5.0)
    for _ in range(2):
        _command(bus, CommandPayload(command="notify_wearer", level="urgent", alert_id="a1"))
    _command(bus, CommandPayload(command="notify_wearer", level="urgent", alert_id="a2"))
    assert agent.wearer_notifications == 2 and agent.counters.get("duplicate.command") == 1


@pytest.mark.parametrize("payload", [b"\x00", b"{}", b'{"type":"command"}', b"y" * 600_000])
def test_malformed_commands_are_counted_not_fatal(payload: bytes) -> None:
    agent, bus = _watch([SyntheticEpisode("pause", 20.0, 4.0)], seconds=40.0)
    bus.transport("x").publish(topics.cmd(SITE, "pt-1", "watch-1"), payload)
    assert agent.counters.total("rejected.") == 1
    _drain(agent)
    assert [a.payload.kind for a in _messages(bus, "alert")] == ["pause"]


def test_sources_resolve_or_explain() -> None:
    settings = Settings(data_dir=None)
    signal, ref = open_source("synthetic:pause", settings)
    assert signal.fs == MODEL_FS and ref == "synthetic:pause"
    with pytest.raises(SourceError, match="unknown synthetic"):
        open_source("synthetic:zombie", settings)
    with pytest.raises(SourceError, match="no WFDB record"):
        open_source("mitdb/999", settings)


def test_replay_paces_at_speed_and_loops() -> None:
    signal = synthetic(2.0, MODEL_FS, seed=1)
    replay = Replay(signal, chunk_s=0.5, speed=10.0, loop=True)
    chunks = [replay.next_chunk() for _ in range(6)]
    assert all(c is not None for c in chunks)
    assert replay.stream_s == pytest.approx(3.0)
    assert np.allclose(chunks[4].samples_mv, chunks[0].samples_mv)  # type: ignore[union-attr]
    assert replay.wait_s() <= 0.3 + 1e-6


def test_a_model_switch_is_counted_and_reported_in_the_vitals_at_once() -> None:
    """A learned watch under injected CPU load: its vitals say which model variant runs, from the chunk that
    switched on; each switch is counted. A baseline watch's vitals carry no variant at all."""
    import json

    import torch

    from shared.model.net import BeatNet, NetConfig
    from watch_agent.learned import LearnedDetector
    from watch_agent.variants import VariantPolicy

    torch.manual_seed(0)
    tiny = NetConfig(channels=(4, 4), kernel=5, groups=2, pooled=2, context_hidden=8, hidden=8)
    detector = LearnedDetector(MODEL_FS, model=BeatNet(tiny), small_model=BeatNet(NetConfig(channels=(4,), groups=2)),
                               policy=VariantPolicy(budget_ms=10, over_windows=2, recover_windows=3,
                                                    relative_cost=0.5),
                               inference_slowdown_ms=15)
    bus = InMemoryBus()
    agent = WatchAgent(Settings(site=SITE, data_dir=None), bus.transport("watch-1"),
                       WatchConfig(device_id="watch-1", patient_id="pt-1", vitals_every_s=5.0),
                       Replay(synthetic(40, MODEL_FS, seed=5), loop=False), detector=detector)
    agent.start(run=False)
    while (chunk := agent.replay.next_chunk()) is not None:
        if agent.replay.stream_s >= 20:
            detector.inference_slowdown_ms = 0.0  # the load goes
        agent.process(chunk)
    vitals = _messages(bus, "vitals")
    variants = [v.payload.model_variant for v in vitals]
    assert variants[0] == "full" and "small" in variants and variants[-1] == "full"
    first_small = variants.index("small")
    gap = vitals[first_small].payload.stream_s - vitals[first_small - 1].payload.stream_s
    assert 0 < gap < 5.0  # sent with the switch, not at the next 5 s tick
    assert agent.counters.get("watch.model_switch.small") == 1 and agent.counters.get("watch.model_switch.full") == 1
    # the capabilities (retained, for the edge's registry) follow each switch at once, with the latency behind it
    caps = [decode(p, max_bytes=1 << 16) for t, p, *_ in bus.published if t == topics.capabilities(SITE, "watch-1")]
    active = [c.payload.active_variant for c in caps if isinstance(c, CapabilitiesMessage)]
    assert active[0] == "full" and active[1:] == ["small", "full"], active
    assert all(c.payload.model_variants == ["full", "small"] for c in caps if isinstance(c, CapabilitiesMessage))
    assert isinstance(caps[1], CapabilitiesMessage) and (caps[1].payload.inference_ms or 0) > 10
    assert isinstance(caps[0], CapabilitiesMessage) and caps[0].payload.battery_pct == 80.0
    baseline, bus2 = _watch([], seconds=3.0)
    _drain(baseline)
    raw = [p for t, p, *_ in bus2.published if t.endswith("/vitals")]
    assert raw and all("model_variant" not in json.loads(p)["payload"] for p in raw)
