"""A page's reads see one commit whole: none of a commit that lands between them."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cloud_expert.db import DeviceRow, HrMinuteRow
from cloud_expert.db.snapshot import one_snapshot
from cloud_expert.telemetry import store_summary
from shared.messages import utcnow
from shared.messages.edge import DeviceState, HrMinute, SummaryMessage, SummaryPayload


def _summary(patient: str) -> SummaryMessage:
    now = utcnow().replace(second=0, microsecond=0)
    return SummaryMessage(source="edge-1", patient_id=patient, payload=SummaryPayload(
        devices=[DeviceState(device_id="watch-1", role="watch", status="online", last_seen=now)],
        minutes=[HrMinute(device_id="watch-1", minute=now - timedelta(minutes=1), n=60, hr_mean=70.0, hr_min=65.0,
                          hr_max=80.0, signal_ok_share=1.0)]))


def _counts(session: Session, patient: str) -> tuple[int, int]:
    devices = session.scalar(select(func.count()).select_from(DeviceRow).where(DeviceRow.patient_id == patient))
    minutes = session.scalar(select(func.count()).select_from(HrMinuteRow).where(HrMinuteRow.patient_id == patient))
    return int(devices or 0), int(minutes or 0)


def test_a_commit_between_two_reads_is_seen_by_neither(sessions: sessionmaker[Session], unique: str) -> None:
    patient = f"pt-snap{unique}"
    with sessions() as page, sessions() as ingest:
        with one_snapshot(page):
            assert _counts(page, patient) == (0, 0)  # the first read fixes the snapshot
            store_summary(ingest, "site-s", _summary(patient), utcnow())
            ingest.commit()
            assert _counts(page, patient) == (0, 0)  # without the snapshot: devices 0, then the minute (0, 1)
        with one_snapshot(page):
            assert _counts(page, patient) == (1, 1)


def test_the_page_can_write_after_its_snapshot_though_others_wrote_during_it(sessions: sessionmaker[Session],
                                                                              unique: str) -> None:
    """On SQLite a snapshot that another connection has written past cannot become a write: the audit row goes
    in after the snapshot has ended."""
    patient = f"pt-snapw{unique}"
    with sessions() as page, sessions() as ingest:
        with one_snapshot(page):
            assert _counts(page, patient) == (0, 0)
            store_summary(ingest, "site-s", _summary(patient), utcnow())
            ingest.commit()
        store_summary(page, "site-s", _summary(f"{patient}-2"), utcnow())  # a write of the page's own
        page.commit()
        assert _counts(page, f"{patient}-2") == (1, 1)


def test_it_ends_a_transaction_already_open(sessions: sessionmaker[Session], unique: str) -> None:
    with sessions() as page:
        page.execute(select(1))
        with one_snapshot(page):  # no error: the open transaction is committed first
            assert _counts(page, f"pt-none{unique}") == (0, 0)
