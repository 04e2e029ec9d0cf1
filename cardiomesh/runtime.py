"""Process plumbing shared by the CLI commands: transports, stop signals, the demo's fleet of watches."""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from shared.settings import Settings
from shared.transport import MqttTransport, Outbox, Transport, Will
from shared.transport.dead_letters import DeadLetterStore


def safe_name(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "-", value)[:64]


def mqtt_transport(settings: Settings, client_id: str, *, will: Will | None = None, online: Will | None = None,
                   outbox: bool = False, clean_session: bool = False) -> MqttTransport:
    """One MQTT connection; with `outbox=True` QoS 1 messages are written to SQLite before sending, and
    messages whose handler failed are kept in SQLite for retry (`cardiomesh dead-letters`)."""
    box = Outbox(Path(settings.state_dir) / "outbox" / f"{safe_name(client_id)}.db") if outbox else None
    dead = DeadLetterStore(dead_letter_path(settings, client_id)) if outbox else None
    return MqttTransport(client_id=client_id, host=settings.mqtt_host, port=settings.mqtt_port,
                         clean_session=clean_session, outbox=box, dead_letters=dead, will=will, online=online)


def dead_letter_path(settings: Settings, client_id: str) -> Path:
    return Path(settings.state_dir) / "dead-letters" / f"{safe_name(client_id)}.db"


MakeTransport = Callable[[str, Will | None, Will | None], Transport]


def transport_factory(settings: Settings, *, outbox: bool = True) -> MakeTransport:
    def make(client_id: str, will: Will | None, online: Will | None) -> Transport:
        return mqtt_transport(settings, client_id, will=will, online=online, outbox=outbox)

    return make


def stop_event_on_signals() -> threading.Event:
    """An Event set by Ctrl-C or SIGTERM, so every loop can end cleanly instead of dying mid-write."""
    stop = threading.Event()

    def _handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    return stop
