"""The triage policy, rule by rule (pure: no bus, no clock)."""

import pytest

from edge_hub.fusion import PatientContext, triage
from shared.messages import AlertKind, Rhythm
from tests import factories

NONE = PatientContext()


def test_wide_complex_run_is_an_emergency_with_responses() -> None:
    decision = triage(factories.alert(kind="wide_complex_run").payload, None, NONE)
    assert decision.level == "emergency" and decision.escalate
    assert decision.responses == ("notify_wearer", "stream_strip")


@pytest.mark.parametrize(("pause_s", "level"), [(2.6, "urgent"), (5.5, "emergency")])
def test_pause_levels(pause_s: float, level: str) -> None:
    alert = factories.alert(kind="pause", evidence={"pause_s": pause_s}).payload
    assert triage(alert, None, NONE).level == level


@pytest.mark.parametrize(("hr", "level"), [(125, "info"), (160, "urgent"), (190, "emergency")])
def test_tachycardia_by_rate(hr: float, level: str) -> None:
    decision = triage(factories.alert(kind="tachycardia", hr=hr).payload, None, NONE)
    assert decision.level == level
    assert decision.escalate == (level != "info")
    assert (decision.responses == ()) == (level == "info")


@pytest.mark.parametrize(("hr", "level"), [(38, "urgent"), (25, "emergency")])
def test_bradycardia_by_rate(hr: float, level: str) -> None:
    assert triage(factories.alert(kind="bradycardia", hr=hr).payload, None, NONE).level == level


def test_phone_confirms_irregular_rhythm() -> None:
    alert = factories.alert(kind="irregular_rhythm", hr=110)
    decision = triage(alert.payload, factories.analysis(alert, rhythm="af", irregular=True).payload, NONE)
    assert decision.level == "urgent" and any("confirms" in r for r in decision.reasons)


def test_good_quality_regular_sinus_softens_irregular_alert() -> None:
    alert = factories.alert(kind="irregular_rhythm", hr=80)
    decision = triage(alert.payload, factories.analysis(alert, rhythm="sinus", hr=80).payload, NONE)
    assert decision.level == "info" and not decision.escalate


def test_poor_quality_never_downgrades() -> None:
    alert = factories.alert(kind="irregular_rhythm")
    poor = factories.analysis(alert, rhythm="inconclusive", quality="unusable").payload
    decision = triage(alert.payload, poor, NONE)
    assert decision.level == "urgent" and any("inconclusive" in r for r in decision.reasons)


def test_phone_vt_raises_to_emergency_and_long_rr_to_urgent() -> None:
    alert = factories.alert(kind="tachycardia", hr=130)
    assert triage(alert.payload, factories.analysis(alert, rhythm="vt").payload, NONE).level == "emergency"
    long_rr = factories.analysis(alert, rhythm="sinus_tachycardia", max_rr_s=3.4).payload
    assert triage(alert.payload, long_rr, NONE).level == "urgent"


def test_a_ventricular_run_on_the_strip_is_urgent_and_never_softened() -> None:
    """An onset strip reads sinus around a short VT run: the run, not the dominant rhythm, decides."""
    irregular = factories.alert(kind="irregular_rhythm", hr=80)
    sinus_with_run = factories.analysis(irregular, rhythm="sinus", hr=80, vt_run_beats=4).payload
    decision = triage(irregular.payload, sinus_with_run, NONE)
    assert decision.level == "urgent" and any("ventricular beats" in r for r in decision.reasons)


def test_a_run_counts_even_on_a_strip_too_poor_for_a_rhythm() -> None:
    """The phone keeps model-called V beats in unusable segments: a fast run there is still evidence."""
    alert = factories.alert(kind="tachycardia", hr=120)
    poor = factories.analysis(alert, rhythm="inconclusive", quality="unusable", vt_run_beats=5).payload
    decision = triage(alert.payload, poor, NONE)
    assert decision.level == "urgent" and any("inconclusive" in r for r in decision.reasons)


def test_a_slow_ventricular_run_is_not_treated_as_vt() -> None:
    """Only `vt_run_beats` (≥ 100 bpm) counts; a slow run (idioventricular, paced with PVCs) does not."""
    irregular = factories.alert(kind="irregular_rhythm", hr=70)
    slow_run = factories.analysis(irregular, rhythm="sinus", hr=70, vt_run_beats=0).payload
    assert triage(irregular.payload, slow_run, NONE).level == "info"


@pytest.mark.parametrize(("rhythm", "phone_hr", "vt_run_beats", "level"), [
    ("sinus_tachycardia", 120, 3, "urgent"),  # a fast run of three: non-sustained VT
    ("sinus_tachycardia", 120, 2, "info"),  # two ventricular beats are a couplet, not a run
    ("other", 160, 0, "urgent"),  # a fast irregular rhythm the phone cannot name (AF with a fast response)
    ("other", 130, 0, "info"),
])
def test_phone_findings_that_raise_a_tachycardia_alert(rhythm: Rhythm, phone_hr: float, vt_run_beats: int,
                                                       level: str) -> None:
    alert = factories.alert(kind="tachycardia", hr=130)
    analysis = factories.analysis(alert, rhythm=rhythm, hr=phone_hr, vt_run_beats=vt_run_beats).payload
    assert triage(alert.payload, analysis, NONE).level == level


def test_corroboration_by_another_device_bumps_one_level() -> None:
    alert = factories.alert(kind="pause", evidence={"pause_s": 3.0}).payload
    decision = triage(alert, None, PatientContext(other_devices_alerting=1))
    assert decision.level == "emergency" and any("corroborated" in r for r in decision.reasons)
    info_alert = factories.alert(kind="tachycardia", hr=121).payload
    assert triage(info_alert, None, PatientContext(other_devices_alerting=2)).level == "info"


def _event(kind: str, start: float, end: float, beats: int, hr: float | None = None) -> dict[str, object]:
    return {"type": kind, "start_s": start, "end_s": end, "beats": beats, "hr_bpm": hr, "probability": 0.9}


@pytest.mark.parametrize(("alert_kind", "alert_hr", "rhythm", "quality", "events", "candidates", "level"), [
    # monitor events on the phone's strip, whatever its dominant rhythm
    ("tachycardia", 125, "sinus_tachycardia", "good", [_event("vf", 6, 12, 0)], [], "emergency"),
    ("tachycardia", 125, "sinus_tachycardia", "good", [_event("asystole", 8, 14, 0)], [], "emergency"),
    ("tachycardia", 125, "sinus", "good", [_event("vt", 10, 12, 6, 160)], [], "urgent"),
    ("tachycardia", 125, "vt", "good", [_event("vt", 0, 31, 80, 155)], [], "emergency"),
    ("tachycardia", 125, "sinus", "good", [_event("vt", 4, 11, 19, 160)], [], "emergency"),  # half the 12 s strip
    ("irregular_rhythm", 80, "sinus", "good", [_event("vt", 10, 12, 6, 160)], [], "urgent"),  # never softened
    ("tachycardia", 125, "sinus_bradycardia", "good", [_event("extreme_bradycardia", 0, 8, 5, 35)], [], "urgent"),
    ("tachycardia", 125, "sinus_bradycardia", "good", [_event("extreme_bradycardia", 0, 12, 5, 25)], [],
     "emergency"),
    ("tachycardia", 125, "sinus_tachycardia", "good", [_event("extreme_tachycardia", 0, 7, 17, 145)], [], "urgent"),
    ("tachycardia", 125, "sinus", "good", [_event("pause", 4, 7.2, 2, 19)], [], "urgent"),
    ("tachycardia", 125, "sinus", "good", [_event("pause", 4, 6.5, 2, 24)], [], "info"),  # < 3 s: noted only
    ("irregular_rhythm", 90, "other", "good", [_event("af", 0, 30, 40, 90)], [], "urgent"),  # AF confirms
    # candidates: at least urgent, even on a strip nobody could read, never softened
    ("tachycardia", 125, "inconclusive", "unusable", [], [{"rhythm": "vf", "probability": 0.34, "source": "reader"}],
     "urgent"),
    ("irregular_rhythm", 80, "sinus", "good", [], [{"rhythm": "vt", "probability": 0.3, "source": "reader"}],
     "urgent"),
    ("tachycardia", 125, "sinus", "good", [], [{"rhythm": "vt", "probability": 0.7, "source": "rules"}],
     "emergency"),  # the rules' own VT reading keeps its weight
    ("tachycardia", 125, "inconclusive", "unusable", [_event("vf", 2, 12, 0)], [], "emergency"),
])
def test_triage_table_for_monitor_events_and_candidates(alert_kind: AlertKind, alert_hr: float, rhythm: Rhythm,
                                                        quality: str, events: list, candidates: list,
                                                        level: str) -> None:
    alert = factories.alert(kind=alert_kind, hr=alert_hr)
    analysis = factories.analysis(alert, rhythm=rhythm, quality=quality, hr=alert_hr, events=events,
                                  candidates=candidates).payload
    decision = triage(alert.payload, analysis, NONE)
    assert decision.level == level, decision.reasons
    if events and level != "info":
        assert any("event" in r or "confirms" in r for r in decision.reasons)
    if candidates:
        assert any("possible" in r for r in decision.reasons)


def test_every_event_type_has_a_rule() -> None:
    from edge_hub.fusion import EVENT_RULES
    from shared.messages import EVENT_TYPES

    assert {kind for kind, _ in EVENT_RULES} == set(EVENT_TYPES)


def test_a_strip_full_of_events_never_overflows_the_triage() -> None:
    """64 events (the bus maximum) still make a valid triage (≤ 32 reasons), grouped by type."""
    from shared.messages import TriagePayload

    alert = factories.alert(kind="pause", evidence={"pause_s": 3.2})
    events = [_event("pause", 0.5 * i, 0.5 * i + 3.2, 2, 19) for i in range(40)] + \
        [_event("extreme_bradycardia", 0, 12, 5, 35)] * 24
    analysis = factories.analysis(alert, rhythm="sinus_bradycardia", hr=40, events=events).payload
    decision = triage(alert.payload, analysis, NONE)
    TriagePayload(alert_id=alert.payload.alert_id, level=decision.level, stage="final", reasons=list(decision.reasons))
    assert "phone analysis: 40 pause events" in decision.reasons
