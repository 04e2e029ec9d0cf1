"""Device identity on a real Mosquitto started with the configuration `cardiomesh provision` writes.

Proves: no connection without credentials; a device cannot publish as another nor read another's
topics; a phone reads only its paired watch; a revoked device is refused; the password file's hashes
are the broker's own format.
"""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cardiomesh.provision import Identity, ProvisionError, acl_text, mosquitto_hash, plan, provision, revoke
from cardiomesh.runtime import CredentialsError, security_for
from shared import topics
from shared.settings import Settings
from shared.transport import BrokerUnavailable, MqttSecurity, MqttTransport
from tests.conftest import mosquitto_binary

SITE = "home-p"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Broker:
    pki: Path
    tls_port: int
    password_port: int
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([mosquitto_binary(), "-c", str(self.pki / "broker" / "mosquitto.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.tls_port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("provisioned mosquitto did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def tls(self, name: str) -> MqttSecurity:
        c = self.pki / "clients"
        return MqttSecurity(username=name, ca_file=c / "ca.crt", cert_file=c / f"{name}.crt",
                            key_file=c / f"{name}.key")

    def password(self, name: str) -> MqttSecurity:
        return MqttSecurity(username=name, password=(self.pki / "clients" / f"{name}.password").read_text())


def _broker(tmp_path: Path) -> Iterator[Broker]:
    mosquitto_binary()
    tls_port, password_port = _free_port(), _free_port()
    provision(tmp_path / "pki", SITE, 2, tls_port=tls_port, password_port=password_port,
              run_as=getpass.getuser() if os.geteuid() == 0 else None)
    broker = Broker(tmp_path / "pki", tls_port, password_port)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    yield from _broker(tmp_path)


class Client:
    """A connected transport that keeps what it receives."""

    def __init__(self, broker: Broker, name: str, *, tls: bool = True, subscribe: tuple[str, ...] = ()) -> None:
        port = broker.tls_port if tls else broker.password_port
        security = broker.tls(name) if tls else broker.password(name)
        self.transport = MqttTransport(client_id=name, port=port, clean_session=True, security=security)
        self.got: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        for pattern in subscribe:
            self.transport.subscribe(pattern, self._keep, qos=1)
        self.transport.start(wait_s=5)
        assert self.transport.wait_subscribed(5)

    def _keep(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self.got.append((topic, payload))

    def received(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.got)

    def stop(self) -> None:
        self.transport.stop()


def _refused(port: int, security: MqttSecurity | None, name: str = "intruder") -> bool:
    transport = MqttTransport(client_id=name, port=port, clean_session=True, security=security)
    try:
        transport.start(wait_s=2)
    except BrokerUnavailable:
        return True
    transport.stop()
    return False


def _settle(*clients: Client, until: float = 1.0) -> None:
    time.sleep(until)  # QoS 1 on one host: anything allowed through arrives within milliseconds


pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_no_connection_without_credentials(broker: Broker) -> None:
    assert _refused(broker.password_port, None)  # anonymous
    assert _refused(broker.password_port, MqttSecurity(username="watch-1", password="guess"))
    no_cert = MqttSecurity(ca_file=broker.pki / "clients" / "ca.crt")
    assert _refused(broker.tls_port, no_cert)  # TLS, but no client certificate
    assert not _refused(broker.tls_port, broker.tls("watch-1"), "watch-1")
    assert not _refused(broker.password_port, broker.password("watch-1"), "watch-1")


def test_a_device_cannot_publish_as_another_nor_read_its_commands(broker: Broker) -> None:
    edge = Client(broker, f"{SITE}-edge-1", subscribe=(topics.everything(SITE),))
    watch1 = Client(broker, "watch-1", subscribe=(topics.cmd(SITE, "+", "watch-1"),))
    watch2 = Client(broker, "watch-2", subscribe=(topics.cmd(SITE, "+", "watch-1"), topics.everything(SITE)))
    try:
        watch2.transport.publish(topics.alert(SITE, "pt-1", "watch-1"), b"forged")  # as watch-1: dropped
        watch2.transport.publish(topics.alert(SITE, "pt-2", "watch-2"), b"own")
        watch1.transport.publish(topics.alert(SITE, "pt-1", "watch-1"), b"real")
        edge.transport.publish(topics.cmd(SITE, "pt-1", "watch-1"), b"notify")
        _settle(edge, watch1, watch2)
        assert sorted(p for t, p in edge.received() if t.endswith("/alert")) == [b"own", b"real"]
        assert watch1.received() == [(topics.cmd(SITE, "pt-1", "watch-1"), b"notify")]
        assert watch2.received() == []  # neither watch-1's commands nor the site
    finally:
        for c in (edge, watch1, watch2):
            c.stop()


def test_only_the_edge_sends_the_cloud_summaries_and_disclosures(broker: Broker) -> None:
    cloud = Client(broker, "cloud-ingest", subscribe=(topics.summary("+", "+", "+"), topics.disclosure("+", "+", "+")))
    edge, watch = Client(broker, f"{SITE}-edge-1"), Client(broker, "watch-1")
    try:
        edge.transport.publish(topics.summary(SITE, "pt-1", "edge-1"), b"summary")
        edge.transport.publish(topics.disclosure(SITE, "pt-1", "edge-1"), b"disclosure")
        watch.transport.publish(topics.summary(SITE, "pt-1", "edge-1"), b"forged")  # as the edge: dropped
        watch.transport.publish(topics.summary(SITE, "pt-1", "watch-1"), b"forged too")  # not a watch's to send
        _settle(cloud)
        assert sorted(p for _, p in cloud.received()) == [b"disclosure", b"summary"]
    finally:
        for c in (cloud, edge, watch):
            c.stop()


def test_watches_read_global_models_and_their_deltas_that_only_the_coordinator_publishes(broker: Broker) -> None:
    full, delta = topics.fl_model("fed-p"), topics.fl_model_delta("fed-p")
    watch = Client(broker, "watch-1", subscribe=(full, delta))
    coordinator, forger = Client(broker, "fl-coordinator"), Client(broker, "watch-2")
    try:
        for topic in (full, delta):
            forger.transport.publish(topic, b"forged")  # a watch may not publish models: dropped
            coordinator.transport.publish(topic, b"signed")
        _settle(watch)
        assert sorted(watch.received()) == [(full, b"signed"), (delta, b"signed")]
    finally:
        for c in (watch, coordinator, forger):
            c.stop()


def test_a_phone_reads_only_its_paired_watch(broker: Broker) -> None:
    phone = Client(broker, "phone-1", subscribe=(topics.alert(SITE, "+", "+"),))
    watch1, watch2 = Client(broker, "watch-1"), Client(broker, "watch-2")
    try:
        watch1.transport.publish(topics.alert(SITE, "pt-1", "watch-1"), b"mine")
        watch2.transport.publish(topics.alert(SITE, "pt-2", "watch-2"), b"not mine")
        _settle(phone)
        assert [p for _, p in phone.received()] == [b"mine"]
    finally:
        for c in (phone, watch1, watch2):
            c.stop()


def test_a_revoked_device_is_refused(broker: Broker) -> None:
    assert not _refused(broker.tls_port, broker.tls("watch-2"), "watch-2")
    revoke(broker.pki, "watch-2")
    broker.stop()
    broker.start()  # the CRL is read when the listener starts
    assert _refused(broker.tls_port, broker.tls("watch-2"), "watch-2")
    assert _refused(broker.password_port, broker.password("watch-2"), "watch-2")
    assert not _refused(broker.tls_port, broker.tls("watch-1"), "watch-1")
    assert "user watch-2\n" not in (broker.pki / "broker" / "acl").read_text()
    assert not (broker.pki / "hosts" / "watches" / "watch-2.key").exists()  # out of the host bundles too
    assert (broker.pki / "hosts" / "watches" / "watch-1.key").exists()
    with pytest.raises(ProvisionError, match="no identity"):
        revoke(broker.pki, "watch-9")


def test_the_plan_gives_each_role_only_its_topics() -> None:
    ids = {i.name: i for i in plan("s1", 2)}
    assert set(ids) == {"watch-1", "phone-1", "watch-2", "phone-2", "phones-s1", "s1-edge-1", "cloud-ingest",
                        "fl-coordinator", "operator-s1", "health"}
    assert ids["phone-2"].read == (topics.alert("s1", "+", "watch-2"),)
    assert all("watch-1" in t or "/fl/" in t for t in ids["watch-1"].write)
    assert not any(t.endswith("/cmd") for t in ids["watch-1"].write)
    text = acl_text([Identity("w", "watch", ("a/b",), ("c/d",))])
    assert "user w\ntopic read a/b\ntopic write c/d" in text
    with pytest.raises(ValueError):
        plan("bad/site", 1)
    sharded = {i.name: i for i in plan("s1", 2, edges=3)}
    assert {n for n, i in sharded.items() if i.role == "edge"} == {"s1-edge-1", "s1-edge-2", "s1-edge-3"}
    assert topics.triage("s1", "+", "edge-2") in sharded["s1-edge-2"].write
    assert topics.triage("s1", "+", "edge-1") not in sharded["s1-edge-2"].write  # each triages as itself


def test_password_hash_is_mosquittos_pbkdf2_format() -> None:
    h = mosquitto_hash("secret", salt=b"0123456789ab")
    assert h.startswith("$7$101$MDEyMzQ1Njc4OWFi$") and len(h.split("$")[-1]) == 88


def test_provision_refuses_to_overwrite_a_ca(tmp_path: Path) -> None:
    provision(tmp_path, "s1", 1)
    assert oct((tmp_path / "ca.key").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(ProvisionError, match="already holds a CA"):
        provision(tmp_path, "s1", 1)


def test_security_for_picks_a_connections_own_credentials_or_the_process_identity(tmp_path: Path) -> None:
    provision(tmp_path, "s1", 1)
    clients = tmp_path / "clients"
    plain = Settings(mqtt_credentials_dir=clients, mqtt_identity="cloud-ingest")
    own = security_for(plain, "watch-1")
    assert own is not None and own.username == "watch-1" and own.password and not own.tls
    service = security_for(plain, "cloud-ingest-7")
    assert service is not None and service.username == "cloud-ingest"
    tls = security_for(Settings(mqtt_url="mqtts://broker:8883", mqtt_credentials_dir=clients), "watch-1")
    assert tls is not None and tls.tls and tls.cert_file == clients / "watch-1.crt"
    assert Settings(mqtt_url="mqtts://broker").mqtt_port == 8883
    assert security_for(Settings(), "watch-1") is None  # not provisioned: the demo's anonymous broker
    provision(tmp_path / "two", "s1", 1, edges=2)
    second = security_for(Settings(mqtt_credentials_dir=tmp_path / "two" / "clients"), "s1-edge-2~emergency")
    assert second is not None and second.username == "s1-edge-2"  # the edge's second connection: its identity
    with pytest.raises(CredentialsError, match="CARDIOMESH_MQTT_IDENTITY"):
        security_for(Settings(mqtt_credentials_dir=clients), "stranger")
    with pytest.raises(CredentialsError, match="CARDIOMESH_MQTT_CREDENTIALS_DIR"):
        security_for(Settings(mqtt_url="mqtts://broker:8883"), "watch-1")
