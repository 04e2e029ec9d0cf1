"""Who trains a round (pure), and the protocol acting on it: a watch on a low battery does not train, and its
edge does not hold the round open waiting for it."""

from __future__ import annotations

import time
from functools import partial

from cloud_expert.coordinator.keys import CoordinatorKeys
from shared import topics
from shared.capabilities import CapabilityReporter, OwnState, SimulatedBattery
from shared.fl.selection import choose_for_training
from shared.messages import CapabilitiesPayload, SelectionPolicy
from tests.fl.test_protocol import SITE, _federation

POLICY = SelectionPolicy()


def _watch(**kw: object) -> CapabilitiesPayload:
    base: dict[str, object] = {"role": "watch", "refresh_s": 30, "cores": 2, "cpu_util": 0.1, "mem_mb": 60,
                               "battery_pct": 80.0, "charging": False}
    return CapabilitiesPayload.model_validate(base | kw)


def test_only_idle_or_charging_clients_with_enough_battery_train() -> None:
    assert choose_for_training(_watch(), POLICY).mode == "sync"
    low = choose_for_training(_watch(battery_pct=20.0), POLICY)
    assert not low.take and "battery 20 % < 50 %" in low.reason
    assert choose_for_training(_watch(battery_pct=20.0, charging=True), POLICY).take  # on the charger
    busy = choose_for_training(_watch(cpu_util=0.8), POLICY)
    assert not busy.take and "busy" in busy.reason
    assert choose_for_training(_watch(cpu_util=0.8, charging=True), POLICY).take
    slow = choose_for_training(_watch(inference_ms=140.0), POLICY)
    assert slow.take and slow.mode == "async" and "not waited for" in slow.reason
    assert choose_for_training(None, POLICY).take  # unknown: the device decides for itself
    strict = SelectionPolicy(min_battery_pct=90.0)
    assert not choose_for_training(_watch(), strict).take


def test_a_low_battery_watch_is_not_selected_and_the_round_does_not_wait_for_it(
        coordinator_keys: CoordinatorKeys) -> None:
    bus, coordinator, edges, clients, _ = _federation(coordinator_keys, clients=4, timeout_s=20.0)
    batteries = [SimulatedBattery(pct) for pct in (90.0, 75.0, 60.0, 18.0)]
    for i, client in enumerate(clients):
        reporter = CapabilityReporter(bus.transport(f"caps-{i}"), site=SITE, device_id=f"watch-{i}",
                                      patient_id=None, role="watch", state=partial(OwnState, battery=batteries[i]))
        reporter.publish()  # retained, as a watch does on start and every refresh
        client._own_state = reporter.current
    assert len(edges[0].registry.fresh()) == 4
    started = time.monotonic()
    record = coordinator.run_round(0)
    took = time.monotonic() - started
    assert record.status == "ok" and record.clients == 3
    assert "s1/watch-3" not in record.contributors
    assert took < 10, f"the edge waited for the flat watch ({took:.1f} s of a 20 s deadline)"
    assert edges[0].counters.get("fl.selection.excluded") == 1
    assert clients[3].counters.get("fl.declined") == 1 and not clients[3].sent
    assert topics.capabilities(SITE, "watch-3") in bus.retained
