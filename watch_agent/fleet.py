"""Many watches in one process (`--count N`): one per record or patient, each with its own connection."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from shared.identity import pseudonym
from shared.metrics import Counters
from shared.settings import Settings
from shared.transport import Transport, Will
from watch_agent.app import WatchAgent, WatchConfig, presence_wills
from watch_agent.awaiting import AwaitingAnswers
from watch_agent.replay import Replay, open_source

log = logging.getLogger(__name__)

MakeTransport = Callable[[str, Will | None, Will | None], Transport]


@dataclass(frozen=True, slots=True)
class WatchSpec:
    source: str  # mitdb/203, a .hea/.csv path, or synthetic[:kinds]
    start_s: float = 0.0


class WatchFleet:
    def __init__(self, settings: Settings, make_transport: MakeTransport, specs: list[WatchSpec], *,
                 speed: float = 1.0, loop: bool = True, with_phones: bool = True,
                 counters: Counters | None = None, rhythm_reader: bool = False,
                 make_awaiting: Callable[[str], AwaitingAnswers | None] | None = None) -> None:
        """`make_awaiting`: a durable store of unanswered alerts per watch (in memory without it, as in the
        demo, whose every run starts a fresh hub)."""
        self.settings = settings
        self.counters = counters or Counters()
        self.watches: list[tuple[WatchAgent, Transport]] = []
        for index, spec in enumerate(specs, start=1):
            signal, ref = open_source(spec.source, settings, seed=index, start_s=spec.start_s)
            label = f"{ref}@{spec.start_s:.0f}" if spec.start_s else ref
            # Devices are named by position, patients by a keyed hash: no record name goes on the bus.
            device_id = f"watch-{index}"
            patient_id = pseudonym(f"{label}#{index}", key=settings.pseudonym_key)
            config = WatchConfig(device_id=device_id, patient_id=patient_id,
                                 phone_id=f"phone-{index}" if with_phones else None, stream_ref=ref,
                                 rhythm_reader=rhythm_reader)
            will, online = presence_wills(settings.site, config)
            transport = make_transport(device_id, will, online)
            agent = WatchAgent(settings, transport, config, Replay(signal, speed=speed, loop=loop),
                               counters=self.counters,
                               awaiting=make_awaiting(device_id) if make_awaiting is not None else None)
            self.watches.append((agent, transport))
            log.info("watch ready", extra={"device": device_id, "source": ref, "seconds": round(signal.duration_s)})

    def start(self) -> None:
        for agent, transport in self.watches:
            agent.start(run=False)
            transport.start()
        for agent, _ in self.watches:
            agent.start_replay()

    def stop(self) -> None:
        for agent, _ in self.watches:
            agent.stop()
        for _, transport in self.watches:
            transport.stop()
