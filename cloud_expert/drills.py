"""Drills started from the dashboard: the same path as `cardiomesh drill run`, in a background thread of the
web process, each hop written to its `drill_runs` row as it arrives so the operator's page can follow it.

A drill is always marked as one end to end (`cardiomesh.drill`); a run is `passed` when it reached its DRILL
report(s), `failed` with the reason otherwise. The web process needs the bus settings (and, on a provisioned
site, the operator's command key) for this: without them the page says so instead of starting.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial

from sqlalchemy.orm import Session, sessionmaker

from cloud_expert.accounts import Viewer, audit
from cloud_expert.db import DrillRun, Report
from shared.messages import DRILL_SCENARIOS, DrillScenario, ReportMessage, new_id, utcnow
from shared.settings import Settings

log = logging.getLogger(__name__)

Scenario = DrillScenario
SCENARIOS: tuple[str, ...] = DRILL_SCENARIOS
DRILLERS = ("operator", "admin")
TIMEOUT_S = 120.0

Runner = Callable[..., object]


class DrillRefused(ValueError):
    """A drill that cannot be started as asked; the message is safe to show."""


def start_drill(sessions: sessionmaker[Session], settings: Settings, viewer: Viewer, *, scenario: str, site: str,
                watch_id: str | None) -> str:
    """Record the run and start it in the background (`cardiomesh.drill.run_drill`); its id."""
    if viewer.role not in DRILLERS:
        raise DrillRefused(f"a {viewer.role} cannot start drills")
    if scenario not in SCENARIOS:
        raise DrillRefused(f"scenario must be one of {', '.join(SCENARIOS)}")
    site = site.strip()
    if not site or not viewer.scope.allows_site(site):
        raise DrillRefused(f"you may not drill site {site!r}")
    run_id = new_id()
    with sessions() as session:
        session.add(DrillRun(id=run_id, site=site, scenario=scenario, watch_id=(watch_id or "").strip() or None,
                             requested_by=viewer.username, started_at=utcnow(), finished_at=None, status="running",
                             trace_id=None, lines=[], report_urls=[], error=None))
        audit(session, viewer.username, "drill_started", run_id, f"{scenario} on {site}"
              + (f" ({watch_id})" if watch_id else ""))
        session.commit()
    from cardiomesh.drill import run_drill  # the CLI's own path: one drill, however it is started

    threading.Thread(target=_run, args=(sessions, settings.model_copy(update={"site": site}), run_id, scenario,
                                        watch_id or None, run_drill),
                     name=f"drill-{run_id[:8]}", daemon=True).start()
    return run_id


def run_scheduled(sessions: sessionmaker[Session], settings: Settings, *, scenario: str,
                  runner: Runner | None = None) -> str:
    """A drill the schedule (`cardiomesh drill schedule`) runs for `settings.site`: recorded like a dashboard
    drill (the site's drill history) with `requested_by` "scheduler", run to its end here; its id."""
    if scenario not in SCENARIOS:
        raise DrillRefused(f"scenario must be one of {', '.join(SCENARIOS)}")
    run_id = new_id()
    with sessions() as session:
        session.add(DrillRun(id=run_id, site=settings.site, scenario=scenario, watch_id=None, requested_by="scheduler",
                             started_at=utcnow(), finished_at=None, status="running", trace_id=None, lines=[],
                             report_urls=[], error=None))
        audit(session, None, "drill_scheduled", run_id, f"{scenario} on {settings.site}")
        session.commit()
    if runner is None:
        from cardiomesh.drill import run_drill

        runner = run_drill
    _run(sessions, settings, run_id, scenario, None, runner)
    return run_id


def served(sessions: sessionmaker[Session], report: ReportMessage) -> bool:
    """The dashboard runs this drill: the report is visible once its own database serves it."""
    with sessions() as session:
        return session.get(Report, report.payload.report_id) is not None


def _run(sessions: sessionmaker[Session], settings: Settings, run_id: str, scenario: str, watch_id: str | None,
         runner: Runner) -> None:
    def echo(line: str) -> None:
        with sessions() as session:
            row = session.get(DrillRun, run_id)
            if row is not None:
                row.lines = [*row.lines, line]
                session.commit()

    status, error, trace, reports = "passed", None, None, []
    try:
        result = runner(settings, scenario, watch_id=watch_id, timeout_s=TIMEOUT_S, echo=echo,
                        visible=partial(served, sessions))
        trace, reports = getattr(result, "trace_id", None), list(getattr(result, "report_urls", []))
        from cardiomesh.slo import judge

        verdicts = judge(getattr(result, "hops", []))
        echo("service levels:")
        for verdict in verdicts:
            echo(verdict.line())
        missed = [v.slo.name for v in verdicts if not v.passed]
        if missed:
            status, error = "failed", f"SLO missed: {', '.join(missed)}"
    except Exception as exc:  # DrillError and the rest: the run failed, the page says why
        status, error = "failed", str(exc)[:2000]
        log.warning("drill failed", extra={"drill": run_id, "error": error[:200]})
    with sessions() as session:
        row = session.get(DrillRun, run_id)
        if row is not None:
            row.status, row.error, row.trace_id, row.report_urls, row.finished_at = (
                status, error, trace, reports, utcnow())
            session.commit()
