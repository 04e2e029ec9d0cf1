"""Signed commands: a watch obeys only its own edge (and its site's operator), and never a replay.

The broker's ACL already keeps other devices off a watch's command topic; the signature is the second
wall, for a broker that is misconfigured or compromised. The edge signs every command with its Ed25519
key (`<identity>.cmdkey`, written by `cardiomesh provision`); a watch holding `commands.pub` (the site's
trusted signers) drops any command that is unsigned, signed by a stranger, altered, outside a ±2 min
window, or a message id it has already obeyed. Without `commands.pub` (the demo) commands are not
checked.

The signature covers the whole message (envelope and payload, canonical JSON, a domain tag), except the
signature itself.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.messages import CommandMessage, utcnow
from shared.recent import RecentKeys

_DOMAIN = b"cardiomesh/command/v1\x00"
TRUSTED_FILE = "commands.pub"
WINDOW_S = 120.0
_SEEN_MAX = 4096


def _canonical(msg: CommandMessage) -> bytes:
    data = msg.model_dump(mode="json", by_alias=True)
    data["payload"].pop("signature", None)
    return _DOMAIN + json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class CommandSigner:
    name: str
    key: Ed25519PrivateKey

    def sign(self, msg: CommandMessage) -> CommandMessage:
        named = msg.model_copy(update={"payload": msg.payload.model_copy(update={"signer": self.name,
                                                                                 "signature": None})})
        signature = base64.b64encode(self.key.sign(_canonical(named))).decode()
        return named.model_copy(update={"payload": named.payload.model_copy(update={"signature": signature})})

    @classmethod
    def load(cls, path: Path, name: str) -> CommandSigner:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return cls(name, key)


class CommandVerifier:
    """Checks each command once; `check` returns None to obey, or the reason to drop it."""

    def __init__(self, trusted: dict[str, Ed25519PublicKey], *, window_s: float = WINDOW_S,
                 now: Callable[[], datetime] = utcnow) -> None:
        self.trusted = trusted
        self.window_s = window_s
        self._now = now
        self._seen = RecentKeys(_SEEN_MAX)

    def check(self, msg: CommandMessage, device_id: str | None = None) -> str | None:
        """None to obey, or why not. `device_id`: the receiving watch; a command signed for another is
        refused (a compromised broker could otherwise replay one watch's command to the next). Call
        `obeyed` once it is carried out: only then is its id spent."""
        p = msg.payload
        if p.signature is None or p.signer is None:
            return "unsigned"
        key = self.trusted.get(p.signer)
        if key is None:
            return "unknown_signer"
        try:
            key.verify(base64.b64decode(p.signature, validate=True), _canonical(msg))
        except (InvalidSignature, binascii.Error, ValueError):
            return "bad_signature"
        if device_id is not None and p.target != device_id:
            return "wrong_target"
        if abs((self._now() - msg.created_at).total_seconds()) > self.window_s:
            return "stale"
        if msg.id in self._seen:
            return "replayed"
        return None

    def obeyed(self, msg: CommandMessage) -> None:
        self._seen.add(msg.id)

    @classmethod
    def load(cls, path: Path) -> CommandVerifier:
        """`commands.pub`: {"signer name": "base64 raw Ed25519 public key", …}."""
        raw = json.loads(path.read_text())
        return cls({name: Ed25519PublicKey.from_public_bytes(base64.b64decode(key)) for name, key in raw.items()})


def public_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def signer_for(credentials_dir: Path | None, identity: str) -> CommandSigner | None:
    """The command-signing key of `identity` when this host was provisioned with one."""
    if credentials_dir is None or not (credentials_dir / f"{identity}.cmdkey").exists():
        return None
    return CommandSigner.load(credentials_dir / f"{identity}.cmdkey", identity)


def verifier_for(credentials_dir: Path | None) -> CommandVerifier | None:
    """The trusted signers of a provisioned device; None (commands not checked) when not provisioned."""
    if credentials_dir is None or not (credentials_dir / TRUSTED_FILE).exists():
        return None
    return CommandVerifier.load(credentials_dir / TRUSTED_FILE)
