import json

import numpy as np
import pytest

from shared.messages import AlertMessage, DecodeError, EcgStrip, decode, encode
from tests import factories


def test_roundtrip_keeps_every_field() -> None:
    msg = factories.alert()
    back = decode(encode(msg), max_bytes=1 << 20)
    assert isinstance(back, AlertMessage) and back == msg
    assert json.loads(encode(msg))["schema"] == 1


def test_strip_is_int16_with_gain_and_rate() -> None:
    signal = np.sin(np.linspace(0, 20, 2500)) * 1.5
    strip = EcgStrip.from_mv(signal, fs=250.0)
    assert strip.n_samples == 2500 and strip.duration_s == pytest.approx(10.0)
    assert np.max(np.abs(strip.to_mv() - signal)) <= 0.5 / strip.gain + 1e-12


def test_strip_clips_out_of_range_instead_of_wrapping() -> None:
    strip = EcgStrip.from_mv(np.array([100.0, -100.0]), fs=250.0)
    assert strip.to_mv().tolist() == [32.767, -32.768]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe", "not_json"),
        (b"[1, 2]", "invalid"),
        (b'{"type": "nope"}', "unknown_type"),
        (b'{"type": "alert", "source": "w"}', "invalid"),
        (b"x" * 2000, "oversized"),
    ],
)
def test_bad_payloads_have_reasons(raw: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(raw, max_bytes=1000)
    assert info.value.reason == reason


def test_unknown_fields_and_future_schema_rejected() -> None:
    data = json.loads(encode(factories.alert()))
    with pytest.raises(DecodeError):
        decode(json.dumps({**data, "extra": 1}).encode(), max_bytes=1 << 20)
    with pytest.raises(DecodeError):
        decode(json.dumps({**data, "schema": 99}).encode(), max_bytes=1 << 20)


def test_naive_timestamps_rejected() -> None:
    data = json.loads(encode(factories.alert()))
    data["created_at"] = "2026-01-01T00:00:00"
    with pytest.raises(DecodeError):
        decode(json.dumps(data).encode(), max_bytes=1 << 20)


def test_bad_base64_strip_rejected() -> None:
    data = json.loads(encode(factories.alert()))
    data["payload"]["strip"]["samples_b64"] = "!!!notbase64"
    with pytest.raises(DecodeError):
        decode(json.dumps(data).encode(), max_bytes=1 << 20)


def test_vitals_model_variant_is_optional_and_absent_unless_set() -> None:
    """Old vitals (no model_variant) still decode; a watch without a learned model sends the same bytes as before."""
    from shared.messages import VitalsMessage, VitalsPayload

    plain = VitalsMessage(source="w", payload=VitalsPayload(hr_bpm=60.0, n_beats=10, window_s=10.0, stream_s=1.0))
    assert "model_variant" not in json.loads(encode(plain))["payload"]
    back = decode(encode(plain), max_bytes=1 << 20)
    assert isinstance(back, VitalsMessage) and back.payload.model_variant is None
    small = plain.model_copy(update={"payload": plain.payload.model_copy(update={"model_variant": "small"})})
    back = decode(encode(small), max_bytes=1 << 20)
    assert isinstance(back, VitalsMessage) and back.payload.model_variant == "small"
    with pytest.raises(ValueError):
        VitalsPayload(n_beats=1, window_s=1.0, stream_s=0.0, model_variant="Small model!")
