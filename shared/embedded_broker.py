"""The embedded MQTT broker (amqtt) for `cardiomesh demo` on a machine with no Mosquitto.

It runs on its own asyncio loop in a daemon thread and binds the configured host:port, so every
component (and `cardiomesh drill`) reaches it at the same URL it would reach Mosquitto. amqtt speaks
MQTT 3.1.1 only, which is why the transport pins 3.1.1.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from shared.transport.mqtt import broker_answers

log = logging.getLogger(__name__)


class EmbeddedBroker:
    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}", "max_connections": 0}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._run, name="embedded-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError("embedded broker did not start in time")
        if self._error is not None:
            raise RuntimeError(f"embedded broker failed: {self._error}") from self._error
        log.info("embedded MQTT broker listening", extra={"address": f"{self.host}:{self.port}"})

    def _run(self) -> None:
        from amqtt.broker import Broker

        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def _start() -> None:
            self._broker = Broker(self._config(), loop=loop)
            await self._broker.start()

        try:
            loop.run_until_complete(_start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.close()

    def stop(self) -> None:
        if self._loop is None or self._broker is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
        try:
            future.result(timeout=10)
        except Exception:
            log.warning("embedded broker shutdown was not clean", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)


def ensure_broker(host: str, port: int) -> EmbeddedBroker | None:
    """Start an embedded broker when nothing answers at host:port; None when one already does."""
    if broker_answers(host, port):
        return None
    broker = EmbeddedBroker(host, port)
    broker.start()
    return broker
