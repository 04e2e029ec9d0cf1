"""The MQTT 3.1.1 transport over paho-mqtt 2.x: one object per process owns the client.

What it guarantees, and why:
- TCP_NODELAY on the socket: without it (and `set_tcp_nodelay true` on Mosquitto) QoS 1 round trips
  sit at 40–90 ms behind Nagle's algorithm.
- Reconnect with capped exponential backoff (paho's loop); every (re)connect re-subscribes and
  re-announces presence, so a broker restart restores state.
- `clean_session=False` for consumers: the broker keeps their QoS 1 messages while they are away.
- Manual acks: a QoS 1 message is acknowledged only after its handler returned, so a crash mid-handler
  means redelivery, not loss (at-least-once; consumers dedupe by message id).
- An optional durable outbox: QoS ≥ 1 publishes are written to SQLite first and deleted on PUBACK.
- An optional durable dead-letter store beside it: a message whose handler raised is kept there (by the
  `Router`) before its ack, and retried; see `shared.transport.dead_letters`.
- Handlers run on one dispatcher thread, never on paho's network thread, so a slow handler cannot
  stall keep-alives or acks of other messages.
"""

from __future__ import annotations

import logging
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from shared.metrics import Counters
from shared.transport.base import Handler, matches
from shared.transport.dead_letters import DeadLetterStore
from shared.transport.lanes import Lanes, priority_of
from shared.transport.outbox import Outbox

log = logging.getLogger(__name__)

ROUTE_CACHE_MAX = 65_536


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class _Incoming:
    topic: str
    payload: bytes
    mid: int
    qos: int


_RECONNECT_RACE_TRIES = 5
#: Longest sleep of a connection's network thread with no traffic (`PahoClient`).
LOOP_IDLE_S = 5.0


class PahoClient(mqtt.Client):
    """paho's client with two changes.

    - Its network thread sleeps in select() up to `idle_s` when nothing comes or goes, not paho's fixed 1 s.
      Traffic wakes it at once either way (the socket, or paho's wake-up pair when another thread publishes);
      the timeout only paces its housekeeping, of which the keepalive ping is the only timed duty. Each needless
      wake-up is a CPU wake-up on a watch, and in a process shared by many connections it also takes the
      interpreter lock from whatever else runs: 1,000 simulated watches (bench/fl_scale.py) spent about as much
      CPU on these wake-ups during a one-minute round as on their training.
    - It survives a race of its own: `reconnect()` walks the queue of outgoing packets while another thread may
      be appending a publish to it (paho 2.2 takes no lock there). That raised "deque mutated during iteration"
      in paho's network thread, and the thread ended: the connection was gone for good and publishes queued up
      in silence (2 of 1,000 simulated watches, publishing their updates while paho reconnected them). Trying
      again is safe: `reconnect` repeats everything it did before the walk.
    """

    idle_s: float = 1.0  # MqttTransport sets it from the keepalive

    def _thread_main(self) -> None:
        """paho 2.2's own network thread (`loop_start`), with the idle timeout."""
        try:
            self.loop_forever(timeout=self.idle_s, retry_first_connection=True)
        finally:
            self._thread = None

    def reconnect(self) -> mqtt.MQTTErrorCode:
        for attempt in range(1, _RECONNECT_RACE_TRIES + 1):
            try:
                return super().reconnect()
            except RuntimeError as exc:
                if "mutated during iteration" not in str(exc) or attempt == _RECONNECT_RACE_TRIES:
                    raise
                log.warning("paho reconnect raced with a publish: trying again", extra={"attempt": attempt})
        raise AssertionError("unreachable")


class BrokerUnavailable(ConnectionError):
    """Nothing answered at the broker address in time."""


#: how long an early acknowledgement, or a QoS 0 id paho has not reported yet, is believed (seconds): a real one
#: is milliseconds old, while an id reused after the 65,535 ids wrap is 65,535 publishes old
STALE_ACK_S = 30.0


def _take_fresh(table: dict[int, float], mid: int, now: float) -> bool:
    """Remove `mid` from `table`; True if it was there and not older than `STALE_ACK_S`."""
    at = table.pop(mid, None)
    return at is not None and now - at < STALE_ACK_S


@dataclass(frozen=True, slots=True)
class MqttSecurity:
    """How a client proves who it is (`cardiomesh provision` writes these files): a client certificate over
    TLS (its CN is the username), or a username and password; `ca_file` pins the site's CA."""

    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @property
    def tls(self) -> bool:
        return self.ca_file is not None


class MqttTransport:
    def __init__(
        self,
        *,
        client_id: str,
        host: str = "127.0.0.1",
        port: int = 1883,
        clean_session: bool = False,
        outbox: Outbox | None = None,
        dead_letters: DeadLetterStore | None = None,
        security: MqttSecurity | None = None,
        will: Will | None = None,
        online: Will | None = None,
        keepalive_s: int = 30,
        counters: Counters | None = None,
        drain_s: float = 5.0,
    ) -> None:
        self.client_id = client_id
        #: the component's counters once a `Router` attaches them (`outbox.write_failed`, …)
        self.counters = counters or Counters()
        self._counters_attached = False
        self._host, self._port, self._keepalive = host, port, keepalive_s
        #: how long an orderly `stop` waits for the broker to acknowledge what was published
        self._drain_s = drain_s
        self._outbox = outbox
        #: where a `Router` on this transport keeps messages whose handler failed (durable with the outbox)
        self.dead_letters = dead_letters
        self._online = online
        self._will = will
        self._subs: list[tuple[str, Handler, int]] = []
        #: topic → its handlers: a device's topics repeat every second, and a sharded edge holds a few routes per
        #: patient, so matching each message against every filter again would cost per subscription (cleared on
        #: every change of `_subs`)
        self._route_cache: dict[str, list[Handler]] = {}
        self._subs_lock = threading.Lock()
        #: patterns whose last handler went while no UNSUBSCRIBE could be sent: a persistent session still holds
        #: them at the broker, so they are unsubscribed on the next connect
        self._dropped: set[str] = set()
        self._connected = threading.Event()
        self._suback_lock = threading.Lock()
        self._pending_subacks: set[int] = set()
        self._subscribed = threading.Event()
        self._ack_lock = threading.Lock()
        #: every QoS ≥ 1 publish the broker has not acknowledged yet → its outbox row (None without an outbox):
        #: `stop` waits for these, since a socket closed with PUBACKs still coming back is answered by a reset
        #: that discards whatever the broker had not yet read (the last publishes, under load)
        self._awaiting_ack: dict[int, int | None] = {}
        #: acknowledgements that came back before `publish` returned (paho calls back from its own thread) → when
        self._early_acks: dict[int, float] = {}
        #: QoS 0 publishes paho has not reported written yet → when: their `on_publish` is not an acknowledgement,
        #: and kept in `_early_acks` it would acknowledge a later QoS 1 message once message ids wrap at 65,535.
        #: Entries of either older than `STALE_ACK_S` are ignored: a reused id is 65,535 publishes old
        self._unreported_qos0: dict[int, float] = {}
        self._all_acked = threading.Condition(self._ack_lock)
        #: Rows a previous run left unacknowledged, read before this run can add any of its own: only these
        #: are replayed, once (emptied when the replay starts). Reading the outbox later raced with publish()
        #: (row written, mid not yet tracked), and the fresh row went out twice.
        self._leftover_rows: set[int] = set()
        self._inbox: Lanes[_Incoming] = Lanes(self.counters)
        self._dispatcher: threading.Thread | None = None
        self._client = PahoClient(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session,
            protocol=mqtt.MQTTv311, manual_ack=True,
        )
        # a ping at most keepalive / 4 late: the broker allows 1.5 × keepalive of silence
        self._client.idle_s = min(LOOP_IDLE_S, max(0.25, keepalive_s / 4))
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(0)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        if security is not None:
            if security.username is not None:
                self._client.username_pw_set(security.username, security.password)
            if security.tls:
                self._client.tls_set(ca_certs=str(security.ca_file),
                                     certfile=None if security.cert_file is None else str(security.cert_file),
                                     keyfile=None if security.key_file is None else str(security.key_file))
        if will is not None:
            self._client.will_set(will.topic, will.payload, qos=1, retain=True)
        self._client.on_socket_open = self._on_socket_open
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_publish = self._on_publish
        self._client.on_subscribe = self._on_subscribe

    def attach_counters(self, counters: Counters) -> None:
        """Count into the component's counters (the first router's), keeping what was counted before."""
        if self._counters_attached or counters is self.counters:
            return
        for name, value in self.counters.snapshot().items():
            counters.inc(name, value)
        self.counters, self._counters_attached = counters, True
        self._inbox.counters = counters

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, *, wait_s: float | None = None) -> None:
        if self._outbox is not None:
            self._leftover_rows = {r.row_id for r in self._outbox.pending()}
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name=f"mqtt-{self.client_id}",
                                            daemon=True)
        self._dispatcher.start()
        self._client.connect_async(self._host, self._port, keepalive=self._keepalive)
        self._client.loop_start()
        if wait_s is not None and not self._connected.wait(wait_s):
            self.stop()
            raise BrokerUnavailable(f"no MQTT broker answered at {self._host}:{self._port} in {wait_s:.0f} s")

    def inbox_depth(self) -> dict[str, int]:
        """Delivered messages waiting for the dispatcher, per lane (`shared.transport.lanes`)."""
        return self._inbox.depth()

    def outbox_backlog(self) -> int:
        """Messages written to the durable outbox and not yet acknowledged by the broker (0 without one)."""
        return 0 if self._outbox is None else len(self._outbox)

    def stop(self) -> None:
        if self._connected.is_set():
            if self._will is not None:  # an orderly stop says goodbye itself: the broker sends the will only on loss
                self._send(self._will.topic, self._will.payload, 1, True, None)
            # Let in-flight QoS 1 publishes be acknowledged, so an orderly stop loses nothing from memory.
            if not self.wait_acknowledged(self._drain_s):
                with self._ack_lock:
                    unacked = list(self._awaiting_ack.values())
                kept = sum(row is not None for row in unacked)
                self.counters.inc("publish.unacked_at_stop", len(unacked))
                log.warning("stopping with %d publishes unacknowledged after %.0f s: %d kept in the outbox for the "
                            "next start, %d lost", len(unacked), self._drain_s, kept, len(unacked) - kept,
                            extra={"client_id": self.client_id})
        self._client.disconnect()
        self._client.loop_stop()
        self._inbox.put(None)
        if self._dispatcher is not None:
            self._dispatcher.join(timeout=5)
        if self._outbox is not None:
            self._outbox.close()

    def is_connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def wait_acknowledged(self, timeout_s: float) -> bool:
        """True once the broker has acknowledged every QoS ≥ 1 message published so far (and paho has
        written everything it holds); False if some are still unacknowledged after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._all_acked:
            if not self._all_acked.wait_for(lambda: not self._awaiting_ack, timeout_s):
                return False
        while self._client.want_write():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def wait_subscribed(self, timeout_s: float) -> bool:
        """True once the broker acknowledged every subscription: publishing before that can miss messages."""
        return self._subscribed.wait(timeout_s)

    # -- publish / subscribe ---------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Durably (outbox first) when there is an outbox. A store that cannot be written (read-only, disk
        full) must not silence a monitor: the message goes out anyway, without its durable copy, and the
        failure is counted (`outbox.write_failed`) and logged as an error."""
        row_id = None
        if self._outbox is not None and qos > 0:
            try:
                row_id = self._outbox.add(topic, payload, qos, retain)
            except (sqlite3.Error, OSError) as exc:
                self.counters.inc("outbox.write_failed")
                log.error("outbox cannot be written (%s): sending without a durable copy", exc,
                          extra={"client_id": self.client_id, "topic": topic})
        self._send(topic, payload, qos, retain, row_id)

    def _send(self, topic: str, payload: bytes, qos: int, retain: bool, row_id: int | None) -> None:
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            log.warning("publish refused by client", extra={"topic": topic, "rc": int(info.rc)})
            return
        now = time.monotonic()
        with self._ack_lock:
            if _take_fresh(self._early_acks, info.mid, now):  # written (QoS 0) or acknowledged before it returned
                if row_id is not None:
                    self._remove_row(row_id)
            elif qos == 0:
                if info.rc == mqtt.MQTT_ERR_SUCCESS:  # one sent while disconnected is dropped, never reported
                    self._unreported_qos0[info.mid] = now
            else:
                # a QoS 0 message paho dropped unreported (on a reconnect) left its id: reused, it is this one's now
                self._unreported_qos0.pop(info.mid, None)
                self._awaiting_ack[info.mid] = row_id

    def subscribe(self, pattern: str, handler: Handler, *, qos: int = 1) -> None:
        with self._subs_lock:
            self._subs.append((pattern, handler, qos))
            self._route_cache.clear()
            self._dropped.discard(pattern)
        if self._connected.is_set():
            self._track_subscribe(self._client, pattern, qos)

    def unsubscribe(self, pattern: str, handler: Handler) -> None:
        """Messages already delivered but not yet dispatched no longer reach `handler` either (dispatch matches
        against the live list); they are still acknowledged."""
        with self._subs_lock:
            self._subs = [(p, h, q) for p, h, q in self._subs if not (p == pattern and h is handler)]
            self._route_cache.clear()
            last = all(p != pattern for p, _, _ in self._subs)
            if last:
                self._dropped.add(pattern)
        if last and self._connected.is_set():
            rc, _ = self._client.unsubscribe(pattern)
            if rc == mqtt.MQTT_ERR_SUCCESS:
                with self._subs_lock:
                    self._dropped.discard(pattern)

    def _track_subscribe(self, client: mqtt.Client, pattern: str, qos: int) -> None:
        with self._suback_lock:
            self._subscribed.clear()
            _, mid = client.subscribe(pattern, qos=qos)
            if mid is not None:
                self._pending_subacks.add(mid)

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, reasons: object,
                      properties: object) -> None:
        with self._suback_lock:
            self._pending_subacks.discard(mid)
            if not self._pending_subacks:
                self._subscribed.set()

    # -- paho callbacks (network thread: keep them short) ----------------------------------------
    def _on_socket_open(self, client: mqtt.Client, userdata: object, sock: object) -> None:
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                    properties: object) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("broker refused connection", extra={"client_id": self.client_id, "reason": str(reason)})
            return
        with self._subs_lock:
            patterns = {p: q for p, _, q in self._subs}
            dropped, self._dropped = self._dropped - set(patterns), set()
        for pattern in dropped:
            client.unsubscribe(pattern)
        if not patterns:
            self._subscribed.set()
        for pattern, qos in patterns.items():
            self._track_subscribe(client, pattern, qos)
        if self._online is not None:  # tracked like any publish: its acknowledgement must not linger unclaimed
            self._send(self._online.topic, self._online.payload, 1, True, None)
        self._connected.set()
        log.debug("connected", extra={"client_id": self.client_id})
        if self._outbox is not None and self._leftover_rows:
            leftover, self._leftover_rows = self._leftover_rows, set()
            threading.Thread(target=self._replay_outbox, args=(leftover,), daemon=True).start()

    def _replay_outbox(self, leftover: set[int]) -> None:
        """Send rows a previous run left unacknowledged (this run's own are tracked by paho)."""
        assert self._outbox is not None
        with self._ack_lock:
            tracked = {row for row in self._awaiting_ack.values() if row is not None}
        stale = [r for r in self._outbox.pending() if r.row_id in leftover and r.row_id not in tracked]
        if stale:
            log.info("replaying outbox", extra={"client_id": self.client_id, "rows": len(stale)})
        for row in stale:
            self._send(row.topic, row.payload, row.qos, row.retain, row.row_id)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                       properties: object) -> None:
        self._connected.clear()
        log.debug("disconnected", extra={"client_id": self.client_id, "reason": str(reason)})

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        self._inbox.put(_Incoming(message.topic, bytes(message.payload), message.mid, message.qos),
                        priority_of(message.topic, message.qos), sheddable=message.qos == 0)

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason: object,
                    properties: object) -> None:
        now = time.monotonic()
        with self._ack_lock:
            if _take_fresh(self._unreported_qos0, mid, now):
                return
            if mid not in self._awaiting_ack:
                self._early_acks[mid] = now
                return
            row_id = self._awaiting_ack.pop(mid)
            if row_id is not None:
                self._remove_row(row_id)
            if not self._awaiting_ack:
                self._all_acked.notify_all()

    def _remove_row(self, row_id: int) -> None:
        if self._outbox is not None:
            try:
                self._outbox.remove(row_id)
            except (sqlite3.Error, OSError) as exc:  # sent and acked: at worst it is sent again on restart
                self.counters.inc("outbox.remove_failed")
                log.error("outbox row cannot be deleted (%s): it will be re-sent (deduped)", exc,
                          extra={"client_id": self.client_id})

    # -- dispatch --------------------------------------------------------------------------------
    def _dispatch_loop(self) -> None:
        while (item := self._inbox.get()) is not None:
            with self._subs_lock:
                handlers = self._route_cache.get(item.topic)
                if handlers is None:
                    handlers = [h for p, h, _ in self._subs if matches(p, item.topic)]
                    if len(self._route_cache) >= ROUTE_CACHE_MAX:
                        self._route_cache.clear()
                    self._route_cache[item.topic] = handlers
            for handler in handlers:
                try:
                    handler(item.topic, item.payload)
                except Exception:  # a handler bug must not kill the dispatcher
                    log.exception("handler failed", extra={"topic": item.topic})
            if item.qos > 0:
                self._client.ack(item.mid, item.qos)


def broker_answers(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections at host:port (used to decide on the embedded broker)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False
