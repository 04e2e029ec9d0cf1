"""A provisioned watch obeys only its own edge's signed commands, once, and never a forged or replayed one."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cardiomesh.provision import provision
from edge_hub.app import EdgeHub
from edge_hub.store import EdgeStore
from shared import topics
from shared.crypto.commands import CommandSigner, CommandVerifier, signer_for, verifier_for
from shared.ecg.sources import synthetic
from shared.messages import CommandMessage, CommandPayload, encode, utcnow
from shared.settings import Settings
from shared.transport import InMemoryBus
from tests import factories
from watch_agent.app import WatchAgent, WatchConfig
from watch_agent.replay import Replay

SITE = "home-s"


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pki")
    provision(out, SITE, 1)
    return out / "clients"


def _watch(settings: Settings, bus: InMemoryBus) -> WatchAgent:
    config = WatchConfig(device_id="watch-1", patient_id="pt-1", phone_id="phone-1", stream_ref="synthetic")
    agent = WatchAgent(settings, bus.transport("watch-1"), config, Replay(synthetic(5.0, 250.0, seed=1), loop=False))
    agent.start(run=False)
    return agent


def _command(signer: CommandSigner | None, target: str = "watch-1", **fields: object) -> CommandMessage:
    msg = CommandMessage(source="edge-1", patient_id="pt-1", seq=next(_SEQ),
                         payload=CommandPayload(command="notify_wearer", level="urgent", alert_id="a-1",
                                                target=target), **fields)
    return msg if signer is None else signer.sign(msg)


_SEQ = itertools.count(1)


def _send(bus: InMemoryBus, msg: CommandMessage) -> None:
    bus.transport("edge").publish(topics.cmd(SITE, "pt-1", "watch-1"), encode(msg))


def test_only_the_sites_signed_commands_are_obeyed(clients: Path) -> None:
    settings = Settings(site=SITE, data_dir=None, mqtt_credentials_dir=clients)
    bus = InMemoryBus()
    watch = _watch(settings, bus)
    edge = signer_for(clients, f"{SITE}-edge-1")
    assert edge is not None
    stranger = CommandSigner(f"{SITE}-edge-1", Ed25519PrivateKey.generate())  # claims the edge's name
    _send(bus, _command(None))
    _send(bus, _command(stranger))
    altered = _command(edge)
    _send(bus, altered.model_copy(update={"payload": altered.payload.model_copy(update={"level": "info"})}))
    _send(bus, _command(edge, created_at=utcnow() - timedelta(minutes=10)))
    _send(bus, _command(edge, target="watch-2"))  # signed for another watch, replayed to this one
    assert watch.wearer_notifications == 0
    good = _command(edge)
    _send(bus, good)
    _send(bus, good)  # a replay of the very same message
    assert watch.wearer_notifications == 1
    c = watch.counters
    reasons = ("unsigned", "bad_signature", "stale", "replayed", "wrong_target")
    assert [c.get(f"rejected.command_{r}") for r in reasons] == [1, 2, 1, 1, 1]


def test_the_edge_signs_and_a_provisioned_watch_obeys(clients: Path, tmp_path: Path) -> None:
    settings = Settings(site=SITE, data_dir=None, mqtt_credentials_dir=clients, state_dir=tmp_path,
                        edge_analysis=False)
    bus = InMemoryBus()
    watch = _watch(settings, bus)
    hub = EdgeHub(settings, bus.transport("edge"), store=EdgeStore(tmp_path / "edge.db"))
    hub.start()
    try:
        alert = factories.alert(device="watch-1", patient="pt-1")
        bus.transport("w").publish(topics.alert(SITE, "pt-1", "watch-1"), encode(alert))
        assert watch.wearer_notifications == 1 and watch.counters.total("rejected.command") == 0
    finally:
        hub.stop()


def test_a_provisioned_watch_without_its_trusted_signers_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"commands\.pub"):
        _watch(Settings(site=SITE, data_dir=None, mqtt_credentials_dir=tmp_path), InMemoryBus())
    with pytest.raises(ValueError, match="cmdkey"):
        EdgeHub(Settings(site=SITE, state_dir=tmp_path, mqtt_credentials_dir=tmp_path), InMemoryBus().transport("e"),
                store=EdgeStore(tmp_path / "edge.db"))


def test_an_unprovisioned_watch_does_not_check(tmp_path: Path) -> None:
    assert verifier_for(None) is None and verifier_for(tmp_path) is None and signer_for(tmp_path, "x") is None
    bus = InMemoryBus()
    watch = _watch(Settings(site=SITE, data_dir=None), bus)
    _send(bus, _command(None))
    assert watch.wearer_notifications == 1


def test_verifier_window_is_both_ways() -> None:
    key = Ed25519PrivateKey.generate()
    signer = CommandSigner("e", key)
    now = utcnow()
    verifier = CommandVerifier({"e": key.public_key()}, window_s=60, now=lambda: now)
    assert verifier.check(_command(signer, created_at=now + timedelta(seconds=90))) == "stale"  # from the future
    assert verifier.check(_command(signer, created_at=now - timedelta(seconds=30))) is None
    assert verifier.check(_command(CommandSigner("other", key))) == "unknown_signer"
