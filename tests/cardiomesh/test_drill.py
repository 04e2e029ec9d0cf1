"""`drill run` against a scripted stand-in for the system on the real Mosquitto: when it returns, and with what.

The stand-in plays a watch (retained presence) and, on the drill command, the hops of the drill's episodes
(alerts, triages, escalations, reports) with the drill's trace id, so each waiting rule is tested apart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cardiomesh.drill import DrillError, DrillResult, describe, hop_time, run_drill
from shared import topics
from shared.identity import Stamper
from shared.messages import (
    CommandMessage,
    EscalationMessage,
    EscalationPayload,
    Hop,
    PresenceMessage,
    PresencePayload,
    ReportMessage,
    ReportPayload,
    TriageLevel,
    TriageMessage,
    TriagePayload,
    decode,
    encode,
    new_id,
)
from shared.settings import Settings
from shared.transport import MqttTransport
from tests import factories

PATIENT, WATCH = "pt-drill", "watch-1"
#: (alert kind, final triage level, seconds until its report after the triage, or None for no report)
Episode = tuple[str, TriageLevel, float | None]


@contextmanager
def scripted_system(settings: Settings, episodes: list[Episode]) -> Iterator[None]:
    host, port = settings.mqtt_host, settings.mqtt_port
    site = settings.site
    bus = MqttTransport(client_id=f"{site}-standin", host=host, port=port, clean_session=True)
    stamp = Stamper("edge-1")

    def play(trace_id: str) -> None:
        def send(topic: str, message: object) -> None:
            bus.publish(topic, encode(message))  # type: ignore[arg-type]

        alerts = []
        for kind, _level, _delay in episodes:
            alert = factories.alert(kind=kind, device=WATCH, patient=PATIENT, drill=True,  # type: ignore[arg-type]
                                    trace_id=trace_id)
            alerts.append(alert)
            send(topics.alert(site, PATIENT, WATCH), alert)
        time.sleep(0.2)
        pending: list[tuple[float, ReportMessage]] = []
        for alert, (_kind, level, delay) in zip(alerts, episodes, strict=True):
            fields = stamp(patient_id=PATIENT, trace_id=trace_id, drill=True)
            triage = TriagePayload(alert_id=alert.payload.alert_id, level=level, stage="final")
            send(topics.triage(site, PATIENT, "edge-1"), TriageMessage(**fields, payload=triage))
            if level == "info":
                continue
            escalation = EscalationPayload(alert_id=alert.payload.alert_id, site=site, level=level, alert=alert,
                                           triage=triage)
            send(topics.escalation(site, PATIENT, "edge-1"),
                 EscalationMessage(**stamp(patient_id=PATIENT, trace_id=trace_id, drill=True), payload=escalation))
            if delay is not None:
                report_id = new_id()
                report = ReportPayload(report_id=report_id, alert_id=alert.payload.alert_id, level=level,
                                       url=f"/reports/{report_id}")
                pending.append((time.monotonic() + delay, ReportMessage(
                    **Stamper("cloud")(patient_id=PATIENT, trace_id=trace_id, drill=True), payload=report)))
        for due, message in sorted(pending, key=lambda item: item[0]):
            time.sleep(max(0.0, due - time.monotonic()))
            send(topics.report(site, PATIENT, "cloud"), message)

    def on_command(_topic: str, raw: bytes) -> None:
        message = decode(raw, max_bytes=settings.max_payload_bytes)
        if isinstance(message, CommandMessage) and message.payload.command == "drill_inject":
            threading.Thread(target=play, args=(message.trace_id,), daemon=True).start()

    bus.subscribe(topics.cmd(site, PATIENT, WATCH), on_command)
    bus.start(wait_s=5)
    bus.wait_subscribed(5)
    presence = PresenceMessage(**Stamper(WATCH)(patient_id=PATIENT),
                               payload=PresencePayload(status="online", role="watch"))
    bus.publish(topics.presence(site, WATCH), encode(presence), retain=True)
    try:
        yield
    finally:
        bus.publish(topics.presence(site, WATCH), b"", retain=True)
        bus.stop()


@pytest.fixture
def drill_settings(mosquitto: tuple[str, int], tmp_path: Path, unique: str) -> Settings:
    host, port = mosquitto
    return Settings(site=f"dr{unique}", state_dir=tmp_path, mqtt_url=f"mqtt://{host}:{port}")


def _drill(settings: Settings, episodes: list[Episode], timeout_s: float = 20.0) -> tuple[DrillResult, list[str]]:
    lines: list[str] = []
    with scripted_system(settings, episodes):
        result = run_drill(settings, "vt", timeout_s=timeout_s, echo=lines.append)
    return result, lines


def test_waits_for_the_report_of_every_escalated_episode(drill_settings: Settings) -> None:
    """The second report comes a second after the first: `drill run` must not return with one."""
    result, _lines = _drill(drill_settings, [("wide_complex_run", "emergency", 0.2), ("tachycardia", "urgent", 1.5)])
    assert len(result.report_urls) == 2


def test_an_info_episode_beside_an_escalated_one_does_not_end_the_drill(drill_settings: Settings) -> None:
    result, _lines = _drill(drill_settings, [("tachycardia", "info", None), ("wide_complex_run", "emergency", 1.0)])
    assert len(result.report_urls) == 1


def test_nothing_escalated_is_a_clear_error(drill_settings: Settings) -> None:
    with pytest.raises(DrillError, match="triaged the drill episode as info"):
        _drill(drill_settings, [("tachycardia", "info", None)])


def test_a_missing_report_fails_the_drill_after_showing_the_ones_that_came(drill_settings: Settings) -> None:
    with pytest.raises(DrillError, match="for escalated alert") as failure:
        _drill(drill_settings, [("wide_complex_run", "emergency", 0.2), ("tachycardia", "urgent", None)],
               timeout_s=6.0)
    assert "no DRILL report within 6 s" in str(failure.value)


def test_a_report_hop_is_timed_when_it_was_rendered_not_when_it_was_announced() -> None:
    rendered = datetime(2026, 11, 26, 8, 0, 0, tzinfo=UTC)
    payload = ReportPayload(report_id=new_id(), alert_id=new_id(), level="urgent", url="/reports/x",
                            hops=[Hop(name="cloud_ingest", source="cloud", at=rendered - timedelta(seconds=1)),
                                  Hop(name="report_rendered", source="cloud", at=rendered)])
    message = ReportMessage(**Stamper("cloud")(patient_id=PATIENT, drill=True), payload=payload)
    assert hop_time(message) == rendered != message.created_at
    bare = ReportMessage(**Stamper("cloud")(patient_id=PATIENT, drill=True),
                         payload=payload.model_copy(update={"hops": []}))
    assert hop_time(bare) == bare.created_at


@pytest.mark.parametrize(("reasons", "detail"), [
    (["rate 180 bpm"], "urgent"),
    (["rate 180 bpm", "no phone findings in time"], "urgent (without the phone's findings)"),
    (["phone offline: strip read at the edge"], "urgent (without the phone's findings)")])
def test_a_final_triage_made_without_the_phone_says_so(reasons: list[str], detail: str) -> None:
    """The operator sees it, and the drill's ordering check knows the phone's analysis may come after it."""
    triage = TriagePayload(alert_id=new_id(), level="urgent", stage="final", reasons=reasons)
    message = TriageMessage(**Stamper("edge-1")(patient_id=PATIENT, drill=True), payload=triage)
    assert describe(message) == ("edge triage (final)", detail)


def _report(report_id: str) -> ReportMessage:
    return ReportMessage(source="cloud", patient_id="pt-1", payload=ReportPayload(
        report_id=report_id, alert_id="a-1", level="urgent", url=f"/reports/{report_id}"))


def test_the_dashboard_probe_sees_a_report_once_the_api_serves_it_and_refuses_a_bad_token() -> None:
    """A real HTTP server standing in for the dashboard's /api/reports/{id} (bearer token, 404 until rendered)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from cardiomesh.drill import VISIBLE_POLL_S, _on_dashboard, dashboard_probe

    served_after = time.monotonic() + 0.3

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") != "Bearer good":
                self.send_response(401)
            elif self.path == "/api/reports/r-1" and time.monotonic() >= served_after:
                self.send_response(200)
            else:
                self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        probe = dashboard_probe(base, "good")
        assert not probe(_report("r-1"))  # not rendered yet
        seen = _on_dashboard(probe, _report("r-1"))
        assert seen is not None and time.monotonic() >= served_after - VISIBLE_POLL_S
        with pytest.raises(DrillError, match="refused the token"):
            dashboard_probe(base, "bad")(_report("r-1"))
    finally:
        server.shutdown()
    with pytest.raises(DrillError, match="not reachable"):
        dashboard_probe(base, "good")(_report("r-1"))


def test_the_dashboard_slo_is_judged_only_when_the_drill_looked() -> None:
    from cardiomesh.drill import HopLine
    from cardiomesh.slo import judge

    t0 = datetime(2026, 12, 4, tzinfo=UTC)
    rendered, looked = HopLine("report rendered", "worker", t0), HopLine("dashboard looked", "cli-drill", t0)
    late = HopLine("report on dashboard", "dashboard", t0 + timedelta(milliseconds=2500))

    def verdict(*hops: HopLine) -> tuple[bool, bool, float | None]:
        [v] = [v for v in judge(hops) if v.slo.name == "report → on the dashboard"]
        return v.applies, v.passed, v.measured_ms

    assert verdict(rendered, looked, late) == (True, False, 2500)
    assert verdict(rendered, looked) == (True, False, None)  # looked and never saw it: a miss
    assert verdict(rendered) == (False, True, None)  # never looked: not judged
