"""Dashboard accounts: users with a role and the sites they may see, sessions, and the audit log.

Passwords are kept only as argon2id hashes. A session token is 32 random bytes, given to the browser in
an HttpOnly cookie (or to a script as an API token) and stored only as its SHA-256, so a copy of the
database signs nobody in. Sessions are created at sign-in and never before (no fixation: there is no
session id to plant), last 12 hours (a browser) or 90 days (an API token), and end at sign-out.
Five failed sign-ins for one username within five minutes lock it for the rest of that window; the
failures are counted from the audit log, so every web process sees the same count.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from cloud_expert.db import AuditEntry, User, WebSession
from cloud_expert.scope import Scope
from shared.messages import new_id, utcnow

log = logging.getLogger(__name__)

Role = Literal["clinician", "technician", "operator", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
SessionKind = Literal["browser", "api"]
LIFETIME = {"browser": timedelta(hours=12), "api": timedelta(days=90)}
LOCKOUT_FAILURES = 5
LOCKOUT_WINDOW = timedelta(minutes=5)
MIN_PASSWORD = 12
_PATIENT = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")  # the bus's pseudonymous id (shared.messages.envelope.Id)

_HASHER = PasswordHasher()
#: verified against when the username is unknown, so a wrong username costs what a wrong password does
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """A request about accounts that cannot be done; the message is safe to show."""


class NoSuchUser(AccountError):
    """The account named does not exist."""


class LockedOut(AccountError):
    pass


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is asking, with what they may see: `sites` None means every site, `patients` None every patient of
    them; an operator sees drills only."""

    username: str
    role: str
    sites: tuple[str, ...] | None
    csrf_token: str
    kind: str
    patients: tuple[str, ...] | None = None

    @property
    def drills_only(self) -> bool:
        return self.role == "operator"

    @property
    def scope(self) -> Scope:
        return Scope(sites=self.sites, drills_only=self.drills_only, patients=self.patients)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _sites(value: str) -> tuple[str, ...] | None:
    return None if value.strip() == "*" else tuple(s for s in value.split(",") if s)


def _patients(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(p for p in value.split(",") if p)


def _viewer(user: User, csrf: str, kind: str) -> Viewer:
    return Viewer(user.username, user.role, _sites(user.sites), csrf, kind, _patients(user.patients))


def _patient_list(patients: list[str] | None) -> str | None:
    if patients is None:
        return None
    bad = [p for p in patients if not _PATIENT.match(p)]
    if bad:
        raise AccountError(f"not a pseudonymous patient id: {bad[0][:64]!r}")
    return ",".join(sorted(set(patients)))


def add_user(session: Session, username: str, password: str, role: str, sites: list[str] | None, *,
             by: str | None = None, patients: list[str] | None = None) -> User:
    """A new account (the caller commits). `sites` None: every site; `patients` None: every patient of those
    sites. `by`: the admin (None from the CLI)."""
    username = username.strip()
    if not username or len(username) > 64 or not all(c.isalnum() or c in "._-@" for c in username):
        raise AccountError("a username is 1–64 letters, digits or . _ - @")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise AccountError(f"user {username!r} exists")
    user = User(id=new_id(), username=username, password_hash=_HASHER.hash(password), role=role,
                sites="*" if sites is None else ",".join(sorted(set(sites))), patients=_patient_list(patients),
                disabled=False, created_at=utcnow())
    session.add(user)
    audit(session, by, "user_added", username, f"role {role}, sites {user.sites}"
          + ("" if user.patients is None else f", patients {user.patients}"))
    return user


def assign_patients(session: Session, username: str, patients: list[str] | None, *, by: str | None = None) -> None:
    """Limit a user to these patients (None: every patient of their sites); audited; the caller commits."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NoSuchUser(f"no user {username!r}")
    user.patients = _patient_list(patients)
    audit(session, by, "user_patients", username, "all patients of their sites" if user.patients is None
          else f"patients {user.patients}")


def demo_account(session: Session, username: str = "demo") -> str:
    """`make demo` only: an admin with a fresh random password each run (printed by the demo, never a
    default one); the caller commits."""
    password = secrets.token_urlsafe(12)
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        add_user(session, username, password, "admin", None)
    else:
        user.password_hash, user.disabled, user.role, user.sites = _HASHER.hash(password), False, "admin", "*"
        audit(session, None, "demo_password_reset", username, None)
    return password


def set_disabled(session: Session, username: str, disabled: bool, *, by: str | None = None) -> None:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NoSuchUser(f"no user {username!r}")
    user.disabled = disabled
    if disabled:  # signed out everywhere at once
        session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    audit(session, by, "user_disabled" if disabled else "user_enabled", username, None)


def sign_in(session: Session, username: str, password: str, *, client: str | None,
            kind: SessionKind = "browser") -> tuple[str, Viewer]:
    """A new session for these credentials: (token, viewer). Audited either way; the caller commits."""
    now = utcnow()
    failures = session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "sign_in_failed", AuditEntry.target == username[:200],
        AuditEntry.at > now - LOCKOUT_WINDOW)) or 0
    if failures >= LOCKOUT_FAILURES:
        audit(session, None, "sign_in_locked", username, None, client=client)
        raise LockedOut("too many failed sign-ins: try again in a few minutes")
    user = session.scalar(select(User).where(User.username == username))
    try:
        _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
        ok = user is not None and not user.disabled
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None:
        audit(session, None, "sign_in_failed", username, None, client=client)
        raise AccountError("unknown username or wrong password")
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.add(WebSession(token_hash=_digest(token), user_id=user.id, csrf_token=csrf, kind=kind, created_at=now,
                           expires_at=now + LIFETIME[kind], last_seen_at=now))
    audit(session, user.username, "sign_in" if kind == "browser" else "api_token_issued", None, None, client=client)
    return token, _viewer(user, csrf, kind)


def issue_api_token(session: Session, username: str) -> str:
    """A long-lived API token for a user, without their password (an admin's CLI act; audited)."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None or user.disabled:
        raise AccountError(f"no active user {username!r}")
    now, token = utcnow(), secrets.token_urlsafe(32)
    session.add(WebSession(token_hash=_digest(token), user_id=user.id, csrf_token=secrets.token_urlsafe(32),
                           kind="api", created_at=now, expires_at=now + LIFETIME["api"], last_seen_at=now))
    audit(session, None, "api_token_issued", username, None)
    return token


def viewer_for(session: Session, token: str) -> Viewer | None:
    """The signed-in user behind a token, or None (unknown, expired, or the user disabled)."""
    row = session.execute(select(WebSession, User).join(User, User.id == WebSession.user_id)
                          .where(WebSession.token_hash == _digest(token))).first()
    if row is None:
        return None
    web, user = row
    now = utcnow()
    if web.expires_at <= now or user.disabled:
        return None
    return _viewer(user, web.csrf_token, web.kind)


def sign_out(session: Session, token: str) -> None:
    viewer = viewer_for(session, token)
    session.execute(delete(WebSession).where(WebSession.token_hash == _digest(token)))
    if viewer is not None:
        audit(session, viewer.username, "sign_out", None, None)


def csrf_ok(viewer: Viewer, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(viewer.csrf_token, presented)


def audit(session: Session, username: str | None, action: str, target: str | None, detail: str | None, *,
          client: str | None = None) -> None:
    """Append one entry (the caller commits). Targets are pseudonymous ids and report ids, never a name."""
    session.add(AuditEntry(at=utcnow(), username=username, action=action[:32],
                           target=None if target is None else target[:200], detail=detail,
                           client=None if client is None else client[:64]))
    log.info("audit", extra={"user": username, "action": action, "target": (target or "")[:80]})


def audit_entries(session: Session, *, limit: int, since: datetime | None = None) -> list[AuditEntry]:
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    return list(session.scalars(stmt))
