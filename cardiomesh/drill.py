"""`cardiomesh drill run`: splice a real episode into a running watch and follow it hop by hop.

The drill travels the real path — watch detector, phone analysis, edge triage and response, cloud
ingest, report worker — and every message it causes carries `drill: true` and the drill's trace_id.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from cardiomesh.runtime import mqtt_transport
from shared import topics
from shared.crypto.commands import signer_for
from shared.ecg.drill import EXPECTS_ESCALATION
from shared.identity import Stamper
from shared.messages import (
    AlertMessage,
    AnalysisMessage,
    CommandMessage,
    CommandPayload,
    DecodeError,
    DrillScenario,
    Envelope,
    EscalationMessage,
    PresenceMessage,
    ReportMessage,
    TriageMessage,
    decode,
    encode,
    utcnow,
)
from shared.settings import Settings
from shared.transport import BrokerUnavailable


class DrillError(RuntimeError):
    """The drill could not be run or did not complete; the message says how far it got."""


#: How long the drill's trace must stay quiet, every episode settled, before `drill run` returns: the
#: episodes of one drill are raised within a second of each other (an episode raised later still carries
#: the drill's mark and reaches the dashboard, but this command may have returned by then).
SETTLE_S = 3.0
#: How long `drill run` waits for a watch to be online (a demo still generating its watches' signals).
PRESENCE_WAIT_S = 20.0
#: How long a drill looks for its report on the dashboard (the SLO is 2 s; longer shows how late it was).
VISIBLE_WAIT_S = 15.0
VISIBLE_POLL_S = 0.05

#: Is this report visible on the dashboard now? (`dashboard_probe` over HTTP, or the dashboard's own data)
Visible = Callable[[ReportMessage], bool]


def dashboard_probe(base_url: str, token: str, *, timeout_s: float = 2.0) -> Visible:
    """Asks the dashboard's API for the report, as a clinician's browser would (a bearer token from
    `cardiomesh user token`): visible once it answers 200."""
    import urllib.error
    import urllib.request

    def visible(report: ReportMessage) -> bool:
        request = urllib.request.Request(f"{base_url.rstrip('/')}/api/reports/{report.payload.report_id}",
                                         headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as answer:
                return bool(answer.status == 200)
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise DrillError(f"the dashboard refused the token ({exc.code}): see `cardiomesh user token`") from None
            return False
        except (urllib.error.URLError, OSError) as exc:
            raise DrillError(f"dashboard {base_url} not reachable: {exc}") from None

    return visible


def _on_dashboard(visible: Visible, report: ReportMessage) -> datetime | None:
    """When the report could first be read on the dashboard (this host's clock), or None within the wait."""
    end = time.monotonic() + VISIBLE_WAIT_S
    while time.monotonic() < end:
        if visible(report):
            return utcnow()
        time.sleep(VISIBLE_POLL_S)
    return None


@dataclass(frozen=True, slots=True)
class HopLine:
    name: str
    source: str
    at: datetime
    detail: str = ""


@dataclass(slots=True)
class DrillResult:
    trace_id: str
    watch_id: str
    hops: list[HopLine] = field(default_factory=list)
    report_urls: list[str] = field(default_factory=list)  # every escalated episode's report


#: what the edge's reasons say when it finalized without the phone's findings (`edge_hub.app._finalize_pending`)
WITHOUT_PHONE = ("no phone findings in time", "strip read at the edge")


def describe(message: Envelope) -> tuple[str, str] | None:
    """A hop name and detail for a message of the drill's trace, or None if it is not a hop."""
    if isinstance(message, AlertMessage):
        return "watch alert", f"{message.payload.kind}, HR {message.payload.hr_bpm or 0:.0f} bpm"
    if isinstance(message, AnalysisMessage):
        p = message.payload
        return "phone analysis", f"{p.rhythm}, quality {p.quality}, {p.analysis_ms:.0f} ms"
    if isinstance(message, CommandMessage) and message.payload.command != "drill_inject":
        return "edge response", message.payload.command
    if isinstance(message, TriageMessage):
        triage = message.payload
        # the edge finalizes without the phone when its findings are late (no findings, or the edge read the strip
        # itself): say so — the operator should see it, and the phone's analysis may then come after this hop
        fallback = any(marker in reason for reason in triage.reasons for marker in WITHOUT_PHONE)
        return f"edge triage ({triage.stage})", triage.level + (" (without the phone's findings)" if fallback else "")
    if isinstance(message, EscalationMessage):
        return "edge escalation", message.payload.level
    if isinstance(message, ReportMessage):
        return "report rendered", message.payload.url
    return None


def hop_time(message: Envelope) -> datetime:
    """When the hop happened: a report's own `report_rendered` hop (its message is sent later, when the
    report is announced), else the message's creation time."""
    if isinstance(message, ReportMessage):
        rendered = [h.at for h in message.payload.hops if h.name == "report_rendered"]
        if rendered:
            return rendered[-1]
    return message.created_at


def run_drill(settings: Settings, scenario: DrillScenario, *, watch_id: str | None = None, timeout_s: float = 120.0,
              echo: Callable[[str], None] = lambda _s: None, visible: Visible | None = None) -> DrillResult:
    """`visible`: how to tell the report is on the dashboard (then the hop "report on dashboard" is timed)."""
    site = settings.site
    watches: dict[str, str] = {}  # watch id → patient id, from retained presence
    trace_id = uuid.uuid4().hex
    messages: list[Envelope] = []
    done = threading.Event()
    cond = threading.Condition()
    # a drill may raise several episodes (a wide-complex run, then tachycardia), and only some escalate:
    # an episode is settled by a final info triage without escalation, or by its report; the drill is done
    # when every episode seen is settled and nothing new came for SETTLE_S
    episodes: set[str] = set()
    final_info: set[str] = set()
    escalated_ids: set[str] = set()
    reported_ids: set[str] = set()
    last_message = [time.monotonic()]

    def on_raw(topic: str, raw: bytes) -> None:
        try:
            message = decode(raw, max_bytes=settings.max_payload_bytes)
        except DecodeError:
            return
        with cond:
            if isinstance(message, PresenceMessage):
                if message.payload.role == "watch" and message.patient_id:
                    if message.payload.status == "online":
                        watches[message.source] = message.patient_id
                    else:
                        watches.pop(message.source, None)
            elif message.trace_id == trace_id and message.drill:
                messages.append(message)
                if describe(message) is not None:  # a hop (streamed strips keep coming and are not)
                    last_message[0] = time.monotonic()
                if isinstance(message, AlertMessage):
                    episodes.add(message.payload.alert_id)
                elif isinstance(message, EscalationMessage):
                    escalated_ids.add(message.payload.alert_id)
                elif isinstance(message, ReportMessage):
                    reported_ids.add(message.payload.alert_id)
                elif isinstance(message, TriageMessage) and message.payload.stage == "final" \
                        and message.payload.level == "info":
                    final_info.add(message.payload.alert_id)
                settled = {a for a in episodes if a in reported_ids or (a in final_info and a not in escalated_ids)}
                if episodes and settled == episodes:
                    done.set()
                else:
                    done.clear()
            cond.notify_all()

    transport = mqtt_transport(settings, f"cli-drill-{trace_id[:8]}", clean_session=True)
    transport.subscribe(topics.everything(site), on_raw, qos=1)
    try:
        transport.start(wait_s=5)
    except BrokerUnavailable as exc:
        raise DrillError(f"{exc}: is `cardiomesh demo` running?") from None
    transport.wait_subscribed(5)  # follow every hop from the very first one
    try:
        # retained presence arrives at once when watches are online; a system still starting gets a while
        deadline = time.monotonic() + min(PRESENCE_WAIT_S, timeout_s)
        with cond:
            while not (watches if watch_id is None else watch_id in watches) and time.monotonic() < deadline:
                cond.wait(0.1)
            online = dict(watches)
        if not online:
            raise DrillError(f"no watch is online on site {site!r} (waited {min(PRESENCE_WAIT_S, timeout_s):.0f} s)")
        target = watch_id or sorted(online, key=lambda w: (len(w), w))[0]
        if target not in online:
            raise DrillError(f"watch {target!r} is not online; online: {', '.join(sorted(online))}")
        patient_id = online[target]
        requested = utcnow()
        command = CommandMessage(**Stamper("cli-drill")(patient_id=patient_id, trace_id=trace_id, drill=True),
                                 payload=CommandPayload(command="drill_inject", scenario=scenario, target=target))
        signer = signer_for(settings.mqtt_credentials_dir, f"operator-{site}")
        if signer is not None:  # a provisioned watch obeys only signed commands
            command = signer.sign(command)
        transport.publish(topics.cmd(site, patient_id, target), encode(command), qos=1)
        echo(f"drill {scenario} → {target} (trace {trace_id})")
        result = DrillResult(trace_id=trace_id, watch_id=target)
        result.hops.append(HopLine("drill requested", "cli-drill", requested))
        echo(f"  +{0.0:9.1f} ms  {'drill requested':<22} {'cli-drill':<14} scenario {scenario}")
        shown = 0
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            done.wait(0.2)
            with cond:
                fresh = messages[shown:]
                shown = len(messages)
                finished = done.is_set() and time.monotonic() - last_message[0] >= SETTLE_S
            for message in fresh:
                hop = describe(message)
                if hop is None:
                    continue
                line = HopLine(hop[0], message.source, hop_time(message), hop[1])
                result.hops.append(line)
                ms = (line.at - requested).total_seconds() * 1000
                echo(f"  +{ms:9.1f} ms  {line.name:<22} {line.source:<14} {line.detail}")
                if isinstance(message, ReportMessage):
                    result.report_urls.append(message.payload.url)
                    if visible is not None:
                        result.hops.append(HopLine("dashboard looked", "cli-drill", utcnow()))
                        seen = _on_dashboard(visible, message)
                        if seen is not None:
                            result.hops.append(HopLine("report on dashboard", "dashboard", seen))
                            echo(f"  +{(seen - requested).total_seconds() * 1000:9.1f} ms  "
                                 f"{'report on dashboard':<22} {'dashboard':<14}")
                        else:
                            echo(f"  report not on the dashboard within {VISIBLE_WAIT_S:.0f} s")
                    echo("  hops recorded on the episode (ms after the drill request):")
                    for recorded in message.payload.hops:
                        at_ms = (recorded.at - requested).total_seconds() * 1000
                        echo(f"  +{at_ms:9.1f} ms  {recorded.name:<22} {recorded.source}")
                        # the episode's own record (e.g. edge_received → edge_response, one host's clock)
                        result.hops.append(HopLine(recorded.name, recorded.source, recorded.at, "recorded"))
            if finished and not fresh:
                if result.report_urls:
                    return result
                if scenario not in EXPECTS_ESCALATION:  # e.g. a tachycardia the phone reads as sinus: info is right
                    echo("  final triage info: not escalated, so no report (a possible outcome of this scenario)")
                    return result
                raise DrillError("the edge triaged the drill episode as info: nothing was escalated, so no report")
        with cond:
            missing = sorted(escalated_ids - reported_ids)
        if result.report_urls and not missing:  # all reported; the trace just never went quiet
            return result
        if result.report_urls:  # the reports that came were printed as hops
            raise DrillError(f"no DRILL report within {timeout_s:.0f} s for escalated alert(s) {', '.join(missing)}")
        raise DrillError(f"no DRILL report within {timeout_s:.0f} s; hops seen: "
                         f"{', '.join(h.name for h in result.hops) or 'none'}")
    finally:
        transport.stop()
