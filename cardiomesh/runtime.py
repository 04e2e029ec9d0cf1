"""Process plumbing shared by the CLI commands: transports, stop signals, the demo's fleet of watches."""

from __future__ import annotations

import logging
import re
import signal
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from shared.metrics import Counters
from shared.settings import Settings
from shared.transport import MqttSecurity, MqttTransport, Outbox, Transport, Will
from shared.transport.dead_letters import DeadLetterStore
from watch_agent.awaiting import AwaitingAnswers

log = logging.getLogger(__name__)

def safe_name(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "-", value)[:64]


class CredentialsError(ValueError):
    """This process has no credentials for a connection it must make (see `cardiomesh provision`)."""


def security_for(settings: Settings, client_id: str) -> MqttSecurity | None:
    """The credentials a connection presents: its own (files named after its client id, as for devices) or
    the process's identity (`CARDIOMESH_MQTT_IDENTITY`, as for services); None when not provisioned. A second
    connection of one identity (the edge's emergency connection) is named `<identity>~<purpose>`."""
    client_id = client_id.split("~", 1)[0]
    folder = settings.mqtt_credentials_dir
    if folder is None:
        if settings.mqtt_tls:
            raise CredentialsError("mqtts:// needs CARDIOMESH_MQTT_CREDENTIALS_DIR (from `cardiomesh provision`)")
        return None
    own = any((folder / f"{client_id}{ext}").exists() for ext in (".key", ".password"))
    name = client_id if own else settings.mqtt_identity
    if name is None:
        raise CredentialsError(f"no credentials for {client_id!r} in {folder}, and CARDIOMESH_MQTT_IDENTITY is unset")
    if settings.mqtt_tls:
        files = [folder / "ca.crt", folder / f"{name}.crt", folder / f"{name}.key"]
        missing = [str(f) for f in files if not f.exists()]
        if missing:
            raise CredentialsError(f"TLS credentials for {name!r} missing: {', '.join(missing)}")
        return MqttSecurity(username=name, ca_file=files[0], cert_file=files[1], key_file=files[2])
    secret = folder / f"{name}.password"
    if not secret.exists():
        raise CredentialsError(f"no password for {name!r} ({secret} not found)")
    return MqttSecurity(username=name, password=secret.read_text().strip())


def mqtt_transport(settings: Settings, client_id: str, *, will: Will | None = None, online: Will | None = None,
                   outbox: bool = False, clean_session: bool = False,
                   counters: Counters | None = None) -> MqttTransport:
    """One MQTT connection; with `outbox=True` QoS 1 messages are written to SQLite before sending, and
    messages whose handler failed are kept in SQLite for retry (`cardiomesh dead-letters`). `counters`: the
    component's own, so what the connection counts (shed, backpressure, outbox) is exported with the rest."""
    counters = counters if counters is not None else Counters()
    box = _local_store(Outbox, Path(settings.state_dir) / "outbox" / f"{safe_name(client_id)}.db",
                       counters) if outbox else None
    dead = _local_store(DeadLetterStore, dead_letter_path(settings, client_id), counters) if outbox else None
    transport = MqttTransport(client_id=client_id, host=settings.mqtt_host, port=settings.mqtt_port,
                              clean_session=clean_session, outbox=box, dead_letters=dead, will=will, online=online,
                              security=security_for(settings, client_id), counters=counters)
    return transport


S = TypeVar("S", Outbox, DeadLetterStore, AwaitingAnswers)


def _local_store(kind: type[S], path: Path, counters: Counters) -> S | None:
    """A device's local store, or None when it cannot be opened (read-only, full, corrupt): a monitor goes
    on detecting and alerting without the durable copy, and says so loudly, rather than not starting."""
    try:
        return kind(path)
    except (sqlite3.Error, OSError) as exc:
        counters.inc(f"store.unavailable.{kind.__name__.lower()}")
        log.error("local store cannot be opened (%s): running without it", exc, extra={"path": str(path)})
        return None


def dead_letter_path(settings: Settings, client_id: str) -> Path:
    return Path(settings.state_dir) / "dead-letters" / f"{safe_name(client_id)}.db"


MakeTransport = Callable[[str, Will | None, Will | None], Transport]


def transport_factory(settings: Settings, *, outbox: bool = True) -> MakeTransport:
    def make(client_id: str, will: Will | None, online: Will | None) -> Transport:
        return mqtt_transport(settings, client_id, will=will, online=online, outbox=outbox)

    return make


def awaiting_factory(settings: Settings) -> Callable[[str], AwaitingAnswers | None]:
    """Each watch's unanswered alerts, durable beside its outbox (`watch_agent.awaiting`)."""
    def make(client_id: str) -> AwaitingAnswers | None:
        path = Path(settings.state_dir) / "outbox" / f"{safe_name(client_id)}-awaiting.db"
        return _local_store(AwaitingAnswers, path, Counters())

    return make


def stop_event_on_signals() -> threading.Event:
    """An Event set by Ctrl-C or SIGTERM, so every loop can end cleanly instead of dying mid-write."""
    stop = threading.Event()

    def _handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    return stop
