"""A clinician's sign-off on a report: sign, amend with a reason, or reject — and the verdict on the alert.

A preliminary report can be signed (final) or rejected; a final or amended one can be amended (the
reason is required and shown). Each act re-renders the report's HTML and PDF with who, when and why, is
kept in `report_reviews` (append-only) and in the audit log, and moves the FHIR status (final, amended,
entered-in-error for a rejected automated report).

The verdict — true alarm, false alarm or uncertain, with the rhythm the clinician read when it differs —
is stored as a `Label` for federated training, to be published on the bus by the cloud service
(`CloudService.publish_labels`). A drill never yields a label.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Literal, get_args

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_expert.accounts import Viewer, audit
from cloud_expert.db import Episode, Label, Report, ReportReview
from cloud_expert.reports.jobs import report_input
from cloud_expert.reports.render import render_report
from shared.messages import new_id, utcnow

log = logging.getLogger(__name__)

Action = Literal["sign", "amend", "reject"]
Verdict = Literal["true_alarm", "false_alarm", "uncertain"]
ACTIONS: tuple[str, ...] = get_args(Action)
VERDICTS: tuple[str, ...] = get_args(Verdict)
SIGNERS = ("clinician", "admin")
#: status a report moves to, and the statuses it may come from
MOVES: dict[str, tuple[str, tuple[str, ...]]] = {
    "sign": ("final", ("preliminary",)),
    "amend": ("amended", ("final", "amended")),
    "reject": ("rejected", ("preliminary",)),
}


class ReviewError(ValueError):
    """A sign-off that cannot be done as asked; the message is safe to show."""


def review(session: Session, report_id: str, viewer: Viewer, *, action: str, reason: str | None,
           verdict: str | None, rhythm: str | None, now: datetime | None = None) -> Report:
    """Apply one sign-off act (the caller commits). The report must be within the viewer's sites."""
    if viewer.role not in SIGNERS:
        raise ReviewError(f"a {viewer.role} cannot sign reports")
    if action not in MOVES:
        raise ReviewError(f"action must be one of {', '.join(ACTIONS)}")
    if verdict is not None and verdict not in VERDICTS:
        raise ReviewError(f"verdict must be one of {', '.join(VERDICTS)}")
    reason = (reason or "").strip() or None
    if action in ("amend", "reject") and reason is None:
        raise ReviewError(f"to {action} a report, give the reason")
    rhythm = (rhythm or "").strip()[:32] or None
    row = session.execute(select(Report, Episode).join(Episode, Report.episode_id == Episode.id)
                          .where(Report.id == report_id)).first()
    if row is None or not viewer.scope.allows(row[1].site, row[1].patient_id, drill=row[1].drill):
        raise LookupError(report_id)
    report, episode = row
    target, allowed_from = MOVES[action]
    if report.review_status not in allowed_from:
        raise ReviewError(f"a {report.review_status} report cannot be {'signed' if action == 'sign' else action + 'ed'}"
                          f" (from {' or '.join(allowed_from)} only)")
    now = now or utcnow()
    data = replace(report_input(session, episode, report_id=report.id, created_at=report.created_at),
                   signed_at=now, signed_by=viewer.username, review_status=target, review_reason=reason)
    rendered = render_report(data)
    report.html, report.pdf = rendered.html, rendered.pdf
    report.signed_at, report.signed_by, report.review_status, report.review_reason = (
        now, viewer.username, target, reason)
    session.add(ReportReview(report_id=report.id, at=now, username=viewer.username, action=action, reason=reason,
                             verdict=verdict, rhythm=rhythm))
    if verdict is not None and not episode.drill:  # drills never become training labels
        session.add(Label(id=new_id(), report_id=report.id, alert_id=episode.id, site=episode.site,
                          patient_id=episode.patient_id, device_id=episode.device_id, verdict=verdict, rhythm=rhythm,
                          created_at=now, published_at=None))
    audit(session, viewer.username, f"report_{action}", report.id,
          f"verdict {verdict or '—'}" + (f"; rhythm {rhythm}" if rhythm else "") + (f"; {reason}" if reason else ""))
    log.info("report reviewed", extra={"trace_id": episode.trace_id, "report_id": report.id, "action": action,
                                       "status": target})
    return report
