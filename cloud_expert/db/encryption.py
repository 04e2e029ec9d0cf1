"""Strips, findings and reports encrypted at rest in the cloud DB (Fernet: AES-128-CBC + HMAC-SHA256).

`CARDIOMESH_DATA_KEYS` holds one or more Fernet keys, comma-separated: the first encrypts, all decrypt.
Rotation: put a new key first, run `cardiomesh db rotate-keys` (every encrypted value re-encrypted under
it), then drop the old key. Without keys (the demo) values are written in clear, and clear values
written before keys were set stay readable, so turning encryption on needs no migration; `rotate-keys`
encrypts them too.

What is encrypted: an episode's alert (with its ECG strip) and findings, and a report's HTML and PDF.
What is not: ids, levels, times, kinds and the pseudonymous patient id (the dashboard lists and filters
on them; they are not health data by themselves).

The cipher is process-wide (`configure`), set by each cloud process from its settings: column types
cannot see the settings, and one process serves one database.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import JSON, LargeBinary, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

_TEXT_PREFIX = "enc:v1:"
_BYTES_PREFIX = b"ENC1"
_JSON_MARK = "$enc"
_lock = threading.Lock()
_cipher: MultiFernet | None = None


class DataKeyError(ValueError):
    """Keys that are not Fernet keys, or a value no configured key decrypts."""


def configure(keys: str | Sequence[str] | None) -> None:
    """Set (or, with None/empty, clear) the process's data keys."""
    global _cipher
    items = [k.strip() for k in (keys.split(",") if isinstance(keys, str) else keys or []) if k.strip()]
    try:
        cipher = MultiFernet([Fernet(k) for k in items]) if items else None
    except ValueError as exc:
        raise DataKeyError(f"CARDIOMESH_DATA_KEYS: not a Fernet key ({exc}); make one with "
                           "`cardiomesh db keygen`") from None
    with _lock:
        _cipher = cipher


def active() -> MultiFernet | None:
    with _lock:
        return _cipher


def new_key() -> str:
    return Fernet.generate_key().decode()


def _decrypt(token: bytes) -> bytes:
    cipher = active()
    if cipher is None:
        raise DataKeyError("an encrypted value, and no CARDIOMESH_DATA_KEYS to read it")
    try:
        return cipher.decrypt(token)
    except InvalidToken:
        raise DataKeyError("an encrypted value no configured data key opens") from None


def is_encrypted(value: object) -> bool:
    return (isinstance(value, str) and value.startswith(_TEXT_PREFIX)) or (
        isinstance(value, bytes) and value.startswith(_BYTES_PREFIX)) or (
        isinstance(value, dict) and _JSON_MARK in value)


class EncryptedJSON(TypeDecorator[Any]):
    """A JSON column whose value is stored as {"$enc": token} when keys are configured."""

    impl = JSON(none_as_null=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        cipher = active()
        if value is None or cipher is None:
            return value
        return {_JSON_MARK: cipher.encrypt(json.dumps(value, separators=(",", ":")).encode()).decode()}

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, dict) and _JSON_MARK in value:
            return json.loads(_decrypt(str(value[_JSON_MARK]).encode()))
        return value


class EncryptedText(TypeDecorator[str]):
    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        cipher = active()
        if value is None or cipher is None:
            return value
        return _TEXT_PREFIX + cipher.encrypt(value.encode()).decode()

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is not None and value.startswith(_TEXT_PREFIX):
            return _decrypt(value[len(_TEXT_PREFIX):].encode()).decode()
        return value


class EncryptedBytes(TypeDecorator[bytes]):
    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: bytes | None, dialect: Dialect) -> bytes | None:
        cipher = active()
        if value is None or cipher is None:
            return value
        return _BYTES_PREFIX + cipher.encrypt(value)

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> bytes | None:
        if value is not None and bytes(value).startswith(_BYTES_PREFIX):
            return _decrypt(bytes(value)[len(_BYTES_PREFIX):])
        return None if value is None else bytes(value)
