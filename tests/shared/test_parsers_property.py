"""Every decoder and parser at a boundary, fed anything: a clear, typed error or a value, never a crash.

Hypothesis generates the input; each test names the one exception type a caller is promised.
"""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import topics
from shared.ecg.sources import load_csv, load_wfdb
from shared.messages import AlertMessage, DecodeError, Envelope, decode, encode
from shared.metrics import Counters
from shared.transport import InMemoryBus, Router
from tests import factories

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
TYPES = ["alert", "analysis", "triage", "escalation", "report", "vitals", "presence", "command", "strip",
         "fl_round", "fl_model", "fl_model_delta", "fl_update", "fl_aggregate"]


def _decodes_or_says_why(raw: bytes) -> None:
    try:
        assert isinstance(decode(raw, max_bytes=1 << 20), Envelope)
    except DecodeError as exc:
        assert exc.reason in ("oversized", "not_json", "invalid", "unknown_type", "wrong_type")


@given(st.binary(max_size=2000))
def test_decode_any_bytes(raw: bytes) -> None:
    _decodes_or_says_why(raw)


@given(st.dictionaries(st.text(max_size=12), json_values, max_size=6), st.sampled_from(TYPES) | json_values)
def test_decode_any_json_object_with_any_type(body: dict[str, object], kind: object) -> None:
    _decodes_or_says_why(json.dumps({**body, "type": kind}).encode())


@given(st.sampled_from(TYPES), st.dictionaries(st.sampled_from(["payload", "source", "seq", "created_at", "trace_id",
                                                                 "patient_id", "drill", "id", "schema"]),
                                               json_values, max_size=9))
def test_decode_envelopes_with_wrong_fields(kind: str, fields: dict[str, object]) -> None:
    _decodes_or_says_why(json.dumps({"type": kind, **fields}).encode())


def test_decode_deep_nesting_and_huge_numbers() -> None:
    for raw in (b"[" * 100_000, b'{"type":"alert","payload":' + b"[" * 50_000 + b"]" * 50_000 + b"}",
                b'{"type":"alert","seq":' + b"9" * 5000 + b"}", b'{"type":"alert","seq":1e400}'):
        _decodes_or_says_why(raw)


@given(st.text(alphabet=string.printable + "é/+#$", max_size=120))
def test_topic_parse_any_text(topic: str) -> None:
    try:
        parts = topics.parse(topic)
    except ValueError:
        return
    assert parts.kind


@given(st.text(max_size=60), st.binary(max_size=3000))
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_router_accept_never_raises(topic: str, raw: bytes) -> None:
    router = Router(InMemoryBus().transport("t"), counters=Counters(), max_bytes=1 << 16, background_retry=False)
    assert router.accept(topic, raw, AlertMessage) is None or topic.startswith("cm/v1/")


def test_router_accepts_a_good_message_on_its_topic() -> None:
    alert = factories.alert(device="watch-1", patient="pt-1")
    router = Router(InMemoryBus().transport("t"), counters=Counters(), max_bytes=1 << 20, background_retry=False)
    assert router.accept(topics.alert("s", "pt-1", "watch-1"), encode(alert), AlertMessage) == alert


@given(st.text(alphabet=string.digits + ".,-e \n\r\tnaifNAIF" + "time_s,mv", max_size=400))
@settings(max_examples=200)
def test_load_csv_any_text(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.csv"
        path.write_text(text)
        try:
            signal = load_csv(path)
        except ValueError as exc:
            assert str(path) in str(exc)
            return
        assert signal.fs > 0 and len(signal.samples_mv) >= 2


@given(st.text(max_size=300), st.binary(max_size=200))
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_load_wfdb_any_header_and_data(header: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "r"
        record.with_suffix(".hea").write_text(header)
        record.with_suffix(".dat").write_bytes(data)
        try:
            signal = load_wfdb(record)
        except ValueError as exc:
            assert "r" in str(exc)
            return
        assert signal.fs > 0


def test_load_wfdb_garbage_named_clearly(tmp_path: Path) -> None:
    (tmp_path / "r.hea").write_text("r 1 360 100\nr.dat 212 200 11 1024 0 0 0 MLII\n")
    (tmp_path / "r.dat").write_bytes(b"\x00")
    try:
        load_wfdb(tmp_path / "r")
    except ValueError as exc:
        assert "r" in str(exc)
