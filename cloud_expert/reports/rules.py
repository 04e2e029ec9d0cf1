"""Expert rules: measurements + the patient's own history in, findings, severity, recommendations and a
personal care plan out. Pure (no DB, no logging, no clock): every rule is a small function, tested alone.

Each threshold is a named constant next to the guideline it comes from. A value that was not measured
(None) never produces a finding and never counts as normal: the report lists it as "not measured".
These are decision-support prompts for a clinician, not diagnoses.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from cloud_expert.reports.measurements import Measurements

Severity = Literal["normal", "info", "moderate", "high", "critical"]
SEVERITY_ORDER: dict[str, int] = {"normal": 0, "info": 1, "moderate": 2, "high": 3, "critical": 4}
Sex = Literal["male", "female"]

# --- citations --------------------------------------------------------------------------------------
QT_AHA_2010 = ("Drew BJ et al. Prevention of torsade de pointes in hospital settings: AHA/ACCF scientific "
               "statement. Circulation 2010;121:1047-1060")
VA_AHA_2017 = ("Al-Khatib SM et al. 2017 AHA/ACC/HRS guideline for management of patients with ventricular "
               "arrhythmias and the prevention of sudden cardiac death. Circulation 2018;138:e272-e391; "
               "Zeppenfeld K et al. 2022 ESC guidelines for ventricular arrhythmias. Eur Heart J 2022;43:3997-4126")
BRADY_ACC_2018 = ("Kusumoto FM et al. 2018 ACC/AHA/HRS guideline on the evaluation and management of patients "
                  "with bradycardia and cardiac conduction delay. Circulation 2019;140:e382-e482")
AF_ESC_2020 = ("Hindricks G et al. 2020 ESC guidelines for the diagnosis and management of atrial fibrillation. "
               "Eur Heart J 2021;42:373-498")
IVCD_AHA_2009 = ("Surawicz B et al. AHA/ACCF/HRS recommendations for the standardization and interpretation of "
                 "the ECG, part III: intraventricular conduction disturbances. J Am Coll Cardiol 2009;53:976-981")
ACLS_AHA_2020 = ("Panchal AR et al. 2020 AHA guidelines for CPR and emergency cardiovascular care, part 3: adult "
                 "advanced life support (tachycardia algorithm). Circulation 2020;142:S366-S468")

# --- thresholds -------------------------------------------------------------------------------------
#: QTc above this is high risk for torsade de pointes (QT_AHA_2010).
QTC_HIGH_RISK_MS = 500.0
#: QTc above the ~99th percentile is prolonged: 470 ms men, 480 ms women (QT_AHA_2010). Sex unknown (the
#: cloud holds only a pseudonym): the lower, more sensitive threshold applies.
QTC_PROLONGED_MS: dict[Sex | None, float] = {"male": 470.0, "female": 480.0, None: 470.0}
#: A QTc increase of more than 60 ms over the patient's baseline is high risk (QT_AHA_2010).
QTC_INCREASE_MS = 60.0
#: Three or more consecutive ventricular beats are VT; 30 s or longer is sustained, shorter is NSVT (VA_AHA_2017).
VT_MIN_BEATS = 3
VT_SUSTAINED_S = 30.0
#: Pauses of 3 s or more are significant (BRADY_ACC_2018); the phone counts RR > 2 s as pauses.
PAUSE_SIGNIFICANT_S = 3.0
PAUSE_NOTED_S = 2.0
#: Sinus bradycardia is HR < 50 bpm; < 40 bpm while awake is marked bradycardia (BRADY_ACC_2018).
BRADY_HR = 50.0
BRADY_MARKED_HR = 40.0
#: First-degree AV block: PR > 200 ms; > 300 ms ("marked") may itself cause symptoms (BRADY_ACC_2018).
PR_FIRST_DEGREE_MS = 200.0
PR_MARKED_MS = 300.0
#: QRS >= 120 ms: complete bundle branch block / wide complex (IVCD_AHA_2009).
QRS_WIDE_MS = 120.0
#: A wide-complex rhythm faster than this is VT until proven otherwise (VA_AHA_2017, ACLS_AHA_2020).
WIDE_TACHY_HR = 100.0
#: At >= 150 bpm the rate itself is likely to cause symptoms (ACLS_AHA_2020).
TACHY_SYMPTOMATIC_HR = 150.0
#: AF with a ventricular rate above the lenient rate-control target of 110 bpm (AF_ESC_2020).
AF_RATE_TARGET_HR = 110.0
AF_RHYTHMS = frozenset({"af", "afl"})

# --- personal care plan -----------------------------------------------------------------------------
#: Earlier episodes needed before a personal baseline is quoted.
MIN_BASELINE_EPISODES = 2
#: A rate this far from baseline (bpm, or fraction of baseline, whichever is larger) is called out.
BASELINE_DELTA_BPM = 15.0
BASELINE_DELTA_FRACTION = 0.20
RECURRENCE_WINDOW = timedelta(days=7)
HISTORY_WINDOW = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Finding:
    """One guideline-based observation: a stable `code`, a severity and the guideline it comes from."""

    code: str
    title: str
    detail: str
    severity: Severity
    citation: str


@dataclass(frozen=True, slots=True)
class PastEpisode:
    """An earlier, non-drill episode of the same patient, reduced to what the care plan compares."""

    at: datetime
    kind: str
    level: str
    rhythm: str | None = None
    hr_bpm: float | None = None
    qtc_ms: float | None = None

    @property
    def label(self) -> str:
        return episode_label(self.kind, self.rhythm)


@dataclass(frozen=True, slots=True)
class HistorySummary:
    """The patient's recent history as the report shows it (drills never included)."""

    n_episodes: int
    window_days: int
    by_label: dict[str, int]
    by_level: dict[str, int]
    baseline_hr_bpm: float | None
    baseline_n: int
    baseline_qtc_ms: float | None
    hr_trend: list[tuple[str, float]]
    qtc_trend: list[tuple[str, float]]


@dataclass(frozen=True, slots=True)
class Assessment:
    findings: tuple[Finding, ...]
    severity: Severity
    recommendations: tuple[str, ...]
    care_plan: tuple[str, ...]
    history: HistorySummary
    measurements: Measurements
    sex: Sex | None = None
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """Plain JSON for the DB (`reports.assessment_json`), the API and the FHIR export."""
        out = asdict(self)
        out["findings"] = [asdict(f) for f in self.findings]
        m = out["measurements"]
        m["events"] = [e.model_dump() for e in self.measurements.events]
        m["candidates"] = [c.model_dump() for c in self.measurements.candidates]
        m["contradictions"] = list(self.measurements.contradictions)
        return out


def episode_label(kind: str, rhythm: str | None) -> str:
    """What an episode counts as in history: AF/flutter by the phone's rhythm, otherwise the watch's alert kind."""
    if rhythm in AF_RHYTHMS:
        return "atrial fibrillation/flutter"
    if rhythm in ("vt", "vf"):
        return "ventricular arrhythmia"
    return kind.replace("_", " ")


def max_severity(severities: Sequence[str]) -> Severity:
    best: Severity = "normal"
    for s in severities:
        if SEVERITY_ORDER[s] > SEVERITY_ORDER[best]:
            best = s  # type: ignore[assignment]
    return best


# --- rules on this episode --------------------------------------------------------------------------
def rule_qtc(m: Measurements, *, sex: Sex | None = None) -> list[Finding]:
    """QTc > 500 ms high risk; above 470 (men/unknown) / 480 (women) prolonged (QT_AHA_2010)."""
    if m.qtc_ms is None:
        return []
    how = f"QTc {m.qtc_ms:.0f} ms ({m.qtc_formula or 'formula not stated'})"
    if m.qtc_ms > QTC_HIGH_RISK_MS:
        return [Finding("qtc_high_risk", "QTc > 500 ms: high risk of torsade de pointes",
                        f"{how} > {QTC_HIGH_RISK_MS:.0f} ms.", "high", QT_AHA_2010)]
    limit = QTC_PROLONGED_MS[sex]
    if m.qtc_ms > limit:
        who = sex or "sex unknown, the men's threshold applies"
        return [Finding("qtc_prolonged", "Prolonged QTc", f"{how} > {limit:.0f} ms ({who}).", "moderate",
                        QT_AHA_2010)]
    return []


def rule_ventricular(m: Measurements) -> list[Finding]:
    """VF (rhythm or ≥ 4 s event) and asystole are critical; >= 3 ventricular beats is VT: sustained if
    >= 30 s, else non-sustained; a possible VF/VT on a poor strip is stated with its probability (VA_AHA_2017).

    A run is described by its beats, its duration and the rate they imply, from one reading of the strip.
    """
    vf_events = [e for e in m.events if e.type == "vf"]
    if m.rhythm == "vf" or vf_events:
        longest = max((e.end_s - e.start_s for e in vf_events), default=None)
        how = f"VF/flutter event over {longest:.1f} s of the strip." if longest else "Rhythm classified as VF."
        return [Finding("vf", "Ventricular fibrillation or flutter", how, "critical", VA_AHA_2017)]
    asys = [e for e in m.events if e.type == "asystole"]
    if m.rhythm == "asystole" or asys:
        longest = max((e.end_s - e.start_s for e in asys), default=None)
        how = f"No QRS for {longest:.1f} s on a connected lead." if longest else "Rhythm classified as asystole."
        return [Finding("asystole", "Asystole", how, "critical", ACLS_AHA_2020)]
    findings: list[Finding] = []
    beats = m.ventricular_run_beats
    if beats is not None and beats >= VT_MIN_BEATS:
        rate = "" if m.ventricular_run_bpm is None else f" at {m.ventricular_run_bpm:.0f} bpm"
        if m.ventricular_run_s is not None and m.ventricular_run_s >= VT_SUSTAINED_S:
            findings.append(Finding("vt_sustained", "Sustained ventricular tachycardia",
                                    f"Run of {beats} ventricular beats over {m.ventricular_run_s:.0f} s{rate} "
                                    f"(>= {VT_SUSTAINED_S:.0f} s).", "critical", VA_AHA_2017))
        else:
            dur = f" over {m.ventricular_run_s:.1f} s" if m.ventricular_run_s is not None else ", duration unknown"
            findings.append(Finding("nsvt", "Non-sustained ventricular tachycardia",
                                    f"Run of {beats} ventricular beats{dur}{rate} (>= {VT_MIN_BEATS} beats, "
                                    f"< {VT_SUSTAINED_S:.0f} s).", "high", VA_AHA_2017))
    elif m.rhythm == "vt":
        findings.append(Finding("vt_unquantified", "Ventricular tachycardia, run length not measured",
                                "Rhythm classified as VT; no run of ventricular beats could be counted.", "high",
                                VA_AHA_2017))
    named = {"vt"} if findings else set()  # a counted run already says VT
    for c in m.candidates:
        if c.rhythm in named or c.rhythm == m.rhythm:
            continue
        title = "asystole" if c.rhythm == "asystole" else c.rhythm.upper()
        findings.append(Finding(f"possible_{c.rhythm}", f"Possible {title}",
                                f"Candidate from the {c.source} at p = {c.probability:.2f}: review the strip now; "
                                "the signal may not support a firm reading.", "high", VA_AHA_2017))
    return findings


def rule_pause(m: Measurements) -> list[Finding]:
    """Longest RR >= 3 s is a significant pause; 2-3 s is noted (BRADY_ACC_2018)."""
    if m.max_rr_s is None:
        return []
    if m.max_rr_s >= PAUSE_SIGNIFICANT_S:
        return [Finding("pause_significant", "Pause >= 3 s", f"Longest RR interval {m.max_rr_s:.1f} s.", "high",
                        BRADY_ACC_2018)]
    if m.max_rr_s >= PAUSE_NOTED_S:
        return [Finding("pause_noted", "Pause 2-3 s", f"Longest RR interval {m.max_rr_s:.1f} s (below the "
                        f"{PAUSE_SIGNIFICANT_S:.0f} s threshold).", "info", BRADY_ACC_2018)]
    return []


def rule_bradycardia(m: Measurements) -> list[Finding]:
    """HR < 40 bpm (awake) marked bradycardia; < 50 bpm bradycardia (BRADY_ACC_2018)."""
    if m.hr_bpm is None:
        return []
    if m.hr_bpm < BRADY_MARKED_HR:
        return [Finding("brady_marked", "Marked bradycardia (< 40 bpm)",
                        f"HR {m.hr_bpm:.0f} bpm ({m.hr_source}); significant if the patient was awake.", "high",
                        BRADY_ACC_2018)]
    if m.hr_bpm < BRADY_HR:
        return [Finding("brady", "Bradycardia (< 50 bpm)", f"HR {m.hr_bpm:.0f} bpm ({m.hr_source}).", "info",
                        BRADY_ACC_2018)]
    return []


def rule_tachycardia(m: Measurements) -> list[Finding]:
    """HR >= 150 bpm: the rate itself may cause symptoms or instability (ACLS_AHA_2020)."""
    if m.hr_bpm is None or m.hr_bpm < TACHY_SYMPTOMATIC_HR:
        return []
    return [Finding("tachy_150", "Tachycardia >= 150 bpm", f"HR {m.hr_bpm:.0f} bpm ({m.hr_source}).", "moderate",
                    ACLS_AHA_2020)]


def rule_pr(m: Measurements) -> list[Finding]:
    """PR > 200 ms first-degree AV block, > 300 ms marked (BRADY_ACC_2018); not assessed in AF (no P waves)."""
    if m.pr_ms is None or m.rhythm in AF_RHYTHMS:
        return []
    if m.pr_ms > PR_MARKED_MS:
        return [Finding("av1_marked", "Marked first-degree AV block", f"PR {m.pr_ms:.0f} ms > {PR_MARKED_MS:.0f} ms.",
                        "moderate", BRADY_ACC_2018)]
    if m.pr_ms > PR_FIRST_DEGREE_MS:
        return [Finding("av1", "First-degree AV block", f"PR {m.pr_ms:.0f} ms > {PR_FIRST_DEGREE_MS:.0f} ms.",
                        "info", BRADY_ACC_2018)]
    return []


def rule_qrs(m: Measurements) -> list[Finding]:
    """QRS >= 120 ms wide complex / bundle branch block (IVCD_AHA_2009); with HR > 100, treat as VT (VA_AHA_2017)."""
    if m.qrs_ms is None or m.qrs_ms < QRS_WIDE_MS:
        return []
    if m.hr_bpm is not None and m.hr_bpm > WIDE_TACHY_HR:
        return [Finding("wide_complex_tachy", "Wide-complex tachycardia: VT until proven otherwise",
                        f"QRS {m.qrs_ms:.0f} ms at HR {m.hr_bpm:.0f} bpm.", "high", VA_AHA_2017)]
    return [Finding("wide_qrs", "Wide QRS (>= 120 ms): possible bundle branch block",
                    f"QRS {m.qrs_ms:.0f} ms.", "moderate", IVCD_AHA_2009)]


def rule_af(m: Measurements, past: Sequence[PastEpisode]) -> list[Finding]:
    """AF/flutter: first recorded → stroke-risk assessment prompt (CHA2DS2-VASc); rate > 110 bpm (AF_ESC_2020)."""
    if m.rhythm not in AF_RHYTHMS:
        return []
    out: list[Finding] = []
    if not any(p.rhythm in AF_RHYTHMS for p in past):
        out.append(Finding("af_new", "New atrial fibrillation/flutter: assess stroke risk",
                           "First AF/flutter recorded for this patient: assess CHA2DS2-VASc for anticoagulation.",
                           "moderate", AF_ESC_2020))
    else:
        out.append(Finding("af_recurrent", "Recurrent atrial fibrillation/flutter",
                           "AF/flutter recorded before for this patient.", "info", AF_ESC_2020))
    if m.hr_bpm is not None and m.hr_bpm > AF_RATE_TARGET_HR:
        out.append(Finding("af_rapid", "AF with rapid ventricular rate",
                           f"HR {m.hr_bpm:.0f} bpm > {AF_RATE_TARGET_HR:.0f} bpm (lenient rate-control target).",
                           "moderate", AF_ESC_2020))
    return out


def rule_qtc_change(m: Measurements, history: HistorySummary) -> list[Finding]:
    """QTc more than 60 ms above the patient's own baseline (QT_AHA_2010)."""
    if m.qtc_ms is None or history.baseline_qtc_ms is None:
        return []
    delta = m.qtc_ms - history.baseline_qtc_ms
    if delta <= QTC_INCREASE_MS:
        return []
    return [Finding("qtc_increase", "QTc increased > 60 ms from baseline",
                    f"QTc {m.qtc_ms:.0f} ms vs baseline {history.baseline_qtc_ms:.0f} ms (+{delta:.0f} ms).", "high",
                    QT_AHA_2010)]


EPISODE_RULES: tuple[Callable[[Measurements], list[Finding]], ...] = (
    rule_ventricular, rule_pause, rule_bradycardia, rule_tachycardia, rule_qrs, rule_pr,
)

RECOMMENDATIONS: dict[str, str] = {
    "vf": "Emergency: activate emergency response; confirm rhythm and patient status immediately.",
    "vt_sustained": "Emergency: contact the patient now; sustained VT needs immediate assessment (ALS if unstable).",
    "nsvt": "Arrange urgent cardiology review: echocardiography and assessment of structural heart disease.",
    "vt_unquantified": "Review the strip for run length; contact the patient urgently.",
    "asystole": "Emergency: activate emergency response; confirm the lead is attached and the patient's status.",
    "possible_vf": "Review the strip now and contact the patient: VF cannot be excluded on this strip.",
    "possible_vt": "Review the strip now and contact the patient: VT cannot be excluded on this strip.",
    "possible_asystole": "Check the patient and the lead now: asystole cannot be excluded on this strip.",
    "wide_complex_tachy": "Treat a wide-complex tachycardia as VT until proven otherwise; contact the patient now.",
    "pause_significant": "Review symptoms (syncope, dizziness) and rate-slowing drugs; consider pacing evaluation.",
    "brady_marked": "Check whether the patient was awake and symptomatic; review AV-nodal blocking drugs.",
    "qtc_high_risk": "Review QT-prolonging drugs and electrolytes (K+, Mg2+); consider a 12-lead ECG.",
    "qtc_increase": "Review QT-prolonging drugs started since baseline and electrolytes.",
    "qtc_prolonged": "Confirm QTc on a 12-lead ECG; review QT-prolonging drugs.",
    "af_new": "Assess stroke risk (CHA2DS2-VASc) and bleeding risk; confirm AF on a 12-lead ECG.",
    "af_rapid": "Review rate control (target resting HR < 110 bpm).",
    "wide_qrs": "Confirm bundle branch block on a 12-lead ECG.",
    "tachy_150": "Contact the patient to assess symptoms and haemodynamic stability.",
    "av1_marked": "Review AV-nodal blocking drugs; correlate with symptoms.",
}


# --- history and care plan --------------------------------------------------------------------------
def summarize_history(past: Sequence[PastEpisode], *, now: datetime,
                      window: timedelta = HISTORY_WINDOW) -> HistorySummary:
    """Counts over `window` before `now`, HR/QTc trends (oldest first) and baselines over all of `past`."""
    ordered = sorted(past, key=lambda p: p.at)
    recent = [p for p in ordered if now - window <= p.at <= now]
    hrs = [p.hr_bpm for p in ordered if p.hr_bpm is not None]
    qtcs = [p.qtc_ms for p in ordered if p.qtc_ms is not None]
    return HistorySummary(
        n_episodes=len(recent), window_days=window.days,
        by_label=dict(Counter(p.label for p in recent)), by_level=dict(Counter(p.level for p in recent)),
        baseline_hr_bpm=float(statistics.median(hrs)) if len(hrs) >= MIN_BASELINE_EPISODES else None,
        baseline_n=len(hrs),
        baseline_qtc_ms=float(statistics.median(qtcs)) if len(qtcs) >= MIN_BASELINE_EPISODES else None,
        hr_trend=[(p.at.isoformat(timespec="minutes"), p.hr_bpm) for p in ordered if p.hr_bpm is not None],
        qtc_trend=[(p.at.isoformat(timespec="minutes"), p.qtc_ms) for p in ordered if p.qtc_ms is not None],
    )


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def care_plan(m: Measurements, past: Sequence[PastEpisode], history: HistorySummary, *, now: datetime) -> list[str]:
    """Statements about this patient against their own baseline and recent episodes (drills never included)."""
    if not past:
        return ["First recorded episode for this patient: no personal baseline yet (it builds from later episodes)."]
    plan: list[str] = []
    label = episode_label(m.alert_kind, m.rhythm)
    last7 = [p for p in past if now - RECURRENCE_WINDOW <= p.at <= now and p.label == label]
    prev7 = [p for p in past if now - 2 * RECURRENCE_WINDOW <= p.at < now - RECURRENCE_WINDOW and p.label == label]
    if last7:
        n = len(last7) + 1
        trend = "burden rising" if len(last7) + 1 > len(prev7) else "not more frequent than the week before"
        plan.append(f"{_ordinal(n)} {label} episode in 7 days ({len(prev7)} in the 7 days before) — {trend}.")
    if history.baseline_hr_bpm is not None and m.hr_bpm is not None:
        base = history.baseline_hr_bpm
        delta = m.hr_bpm - base
        if abs(delta) >= max(BASELINE_DELTA_BPM, BASELINE_DELTA_FRACTION * base):
            plan.append(f"HR {m.hr_bpm:.0f} bpm vs this patient's baseline {base:.0f} bpm "
                        f"({delta:+.0f} bpm; median of {history.baseline_n} earlier episodes).")
        else:
            plan.append(f"HR {m.hr_bpm:.0f} bpm is close to this patient's baseline {base:.0f} bpm.")
    elif history.baseline_hr_bpm is None:
        plan.append(f"No personal HR baseline yet ({history.baseline_n} earlier episode(s) with a phone HR; "
                    f"{MIN_BASELINE_EPISODES} needed).")
    if history.baseline_qtc_ms is not None and m.qtc_ms is not None:
        plan.append(f"QTc {m.qtc_ms:.0f} ms vs baseline {history.baseline_qtc_ms:.0f} ms "
                    f"({m.qtc_ms - history.baseline_qtc_ms:+.0f} ms).")
    emergencies = history.by_level.get("emergency", 0)
    if emergencies:
        plan.append(f"{emergencies} earlier emergency-level episode(s) in {history.window_days} days: "
                    "consider a scheduled review rather than episode-by-episode care.")
    return plan


def assess(m: Measurements, past: Sequence[PastEpisode], *, now: datetime, sex: Sex | None = None) -> Assessment:
    """All rules over one episode and the patient's earlier (non-drill) episodes; `now` is the episode's time."""
    history = summarize_history(past, now=now)
    findings: list[Finding] = []
    for rule in EPISODE_RULES:
        findings += rule(m)
    findings += rule_qtc(m, sex=sex)
    findings += rule_qtc_change(m, history)
    findings += rule_af(m, past)
    findings.sort(key=lambda f: -SEVERITY_ORDER[f.severity])
    recs = [RECOMMENDATIONS[f.code] for f in findings if f.code in RECOMMENDATIONS]
    recs.append("A clinician must review the ECG strip and sign this report before it is final.")
    notes: list[str] = []
    if m.quality == "unusable":
        notes.append("Phone marked the strip unusable: phone intervals are unreliable; HR from the cloud R peaks.")
    missing = [name for name, v in (("PR", m.pr_ms), ("QRS", m.qrs_ms), ("QTc", m.qtc_ms)) if v is None]
    if missing:
        notes.append(f"Not measured: {', '.join(missing)} — no finding is implied for these.")
    return Assessment(findings=tuple(findings), severity=max_severity([f.severity for f in findings]),
                      recommendations=tuple(dict.fromkeys(recs)), care_plan=tuple(care_plan(m, past, history, now=now)),
                      history=history, measurements=m, sex=sex, notes=tuple(notes))
