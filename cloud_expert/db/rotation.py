"""Re-encrypt every encrypted column under the first data key (`cardiomesh db rotate-keys`)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker, undefer
from sqlalchemy.orm.attributes import flag_modified

from cloud_expert.db.models import Episode, Report, StripSegment

BATCH = 200


def _rewrite(sessions: sessionmaker[Session], model: type[Episode] | type[Report], columns: tuple[str, ...]) -> int:
    done, last = 0, ""
    while True:
        with sessions() as session:
            query = select(model).where(model.id > last).order_by(model.id).limit(BATCH)
            if model is Report:
                query = query.options(undefer(Report.pdf))
            rows: list[Episode | Report] = list(session.scalars(query))
            if not rows:
                return done
            for row in rows:
                for column in columns:
                    flag_modified(row, column)
            session.commit()
            done += len(rows)
            last = rows[-1].id


def _rewrite_segments(sessions: sessionmaker[Session]) -> int:
    """Strip segments have a composite key: paged by position (rewriting adds or removes no row)."""
    done = 0
    while True:
        with sessions() as session:
            rows = list(session.scalars(select(StripSegment).order_by(StripSegment.alert_id, StripSegment.t0_s)
                                        .offset(done).limit(BATCH)))
            if not rows:
                return done
            for row in rows:
                flag_modified(row, "samples")
            session.commit()
            done += len(rows)


def rotate(sessions: sessionmaker[Session]) -> dict[str, int]:
    """Read each value (any configured key opens it) and write it back (the first key seals it), in committed
    batches; the counts rewritten."""
    return {"episodes": _rewrite(sessions, Episode, ("alert_json", "analysis_json")),
            "reports": _rewrite(sessions, Report, ("html", "pdf")),
            "strip_segments": _rewrite_segments(sessions)}
