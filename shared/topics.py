"""Every MQTT topic CardioMesh uses, built by functions: no topic string is spelled anywhere else.

Layout: `cm/v1/{site}/{patient_id}/{device_id}/{kind}` for a patient's devices, and
`cm/v1/{site}/presence/{device_id}` for retained presence. Wildcard patterns for subscribers come
from the same functions with `"+"` arguments, so a producer and its consumers cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

ROOT = "cm/v1"
ANY = "+"

DeviceKind = Literal["vitals", "alert", "analysis", "cmd", "triage", "escalation", "report", "strip", "label",
                     "disclosure", "summary"]
DEVICE_KINDS: tuple[str, ...] = DeviceKind.__args__  # type: ignore[attr-defined]

_SEGMENT = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def _seg(value: str) -> str:
    """A topic segment: a wildcard, or a safe id (no '/', '#', '+', spaces or control characters)."""
    if value == ANY or _SEGMENT.match(value):
        return value
    raise ValueError(f"not a valid topic segment: {value!r}")


def device(site: str, patient_id: str, device_id: str, kind: DeviceKind) -> str:
    return f"{ROOT}/{_seg(site)}/{_seg(patient_id)}/{_seg(device_id)}/{kind}"


def vitals(site: str, patient_id: str, device_id: str) -> str:
    return device(site, patient_id, device_id, "vitals")


def alert(site: str, patient_id: str, device_id: str) -> str:
    return device(site, patient_id, device_id, "alert")


def analysis(site: str, patient_id: str, device_id: str) -> str:
    return device(site, patient_id, device_id, "analysis")


def strip(site: str, patient_id: str, device_id: str) -> str:
    return device(site, patient_id, device_id, "strip")


def cmd(site: str, patient_id: str, device_id: str) -> str:
    return device(site, patient_id, device_id, "cmd")


def triage(site: str, patient_id: str, edge_id: str) -> str:
    return device(site, patient_id, edge_id, "triage")


def escalation(site: str, patient_id: str, edge_id: str) -> str:
    return device(site, patient_id, edge_id, "escalation")


def report(site: str, patient_id: str, service_id: str) -> str:
    return device(site, patient_id, service_id, "report")


def label(site: str, patient_id: str, device_id: str) -> str:
    """A clinician's verdict on one of `device_id`'s alerts, from the cloud (like `cmd`, addressed to the device)."""
    return device(site, patient_id, device_id, "label")


def disclosure(site: str, patient_id: str, edge_id: str) -> str:
    """The streamed after-part of an alert's strip, joined by the edge, for the cloud's strip viewer."""
    return device(site, patient_id, edge_id, "disclosure")


def summary(site: str, patient_id: str, edge_id: str) -> str:
    """A patient's devices and per-minute heart rate, from the edge to the cloud (the patient view)."""
    return device(site, patient_id, edge_id, "summary")


def presence(site: str, device_id: str) -> str:
    return f"{ROOT}/{_seg(site)}/presence/{_seg(device_id)}"


def capabilities(site: str, device_id: str) -> str:
    """A device's capabilities and load (retained, refreshed): the edge's registry reads them."""
    return f"{ROOT}/{_seg(site)}/capabilities/{_seg(device_id)}"


def fl_round(federation: str) -> str:
    """The federation's current round announcement (retained)."""
    return f"{ROOT}/fl/{_seg(federation)}/round"


def fl_model(federation: str) -> str:
    """The federation's signed global model (retained)."""
    return f"{ROOT}/fl/{_seg(federation)}/model"


def fl_model_delta(federation: str) -> str:
    """The newest global model as a delta against the previous version (retained): what watches read."""
    return f"{ROOT}/fl/{_seg(federation)}/model_delta"


def fl_update(federation: str, site: str, device_id: str) -> str:
    """A client's (chunked) update, to its site's edge hub."""
    return f"{ROOT}/fl/{_seg(federation)}/update/{_seg(site)}/{_seg(device_id)}"


def fl_aggregate(federation: str, site: str, edge_id: str) -> str:
    """An edge hub's (chunked) sum of its clients' updates, to the cloud coordinator."""
    return f"{ROOT}/fl/{_seg(federation)}/aggregate/{_seg(site)}/{_seg(edge_id)}"


def everything(site: str = ANY) -> str:
    return f"{ROOT}/{_seg(site)}/#"


def shared(group: str, pattern: str) -> str:
    """A shared subscription: horizontally scaled consumers split the messages of `pattern`."""
    return f"$share/{_seg(group)}/{pattern}"


@dataclass(frozen=True, slots=True)
class TopicParts:
    site: str
    patient_id: str | None
    device_id: str
    kind: str


def parse(topic: str) -> TopicParts:
    """Split a concrete topic into its parts; `ValueError` for anything outside the layout."""
    parts = topic.split("/")
    if len(parts) < 3 or "/".join(parts[:2]) != ROOT:
        raise ValueError(f"topic outside {ROOT}: {topic!r}")
    rest = parts[2:]
    if rest[0] == "fl":  # cm/v1/fl/{federation}/round|model|model_delta, …/update|aggregate/{site}/{device}
        if len(rest) == 3 and rest[2] in ("round", "model", "model_delta"):
            return TopicParts(site="*", patient_id=None, device_id="*", kind=f"fl_{rest[2]}")
        if len(rest) == 5 and rest[2] in ("update", "aggregate"):
            return TopicParts(site=rest[3], patient_id=None, device_id=rest[4], kind=f"fl_{rest[2]}")
        raise ValueError(f"unknown fl topic: {topic!r}")
    if len(rest) == 3 and rest[1] in ("presence", "capabilities"):
        return TopicParts(site=rest[0], patient_id=None, device_id=rest[2], kind=rest[1])
    if len(rest) == 4 and rest[3] in DEVICE_KINDS:
        return TopicParts(site=rest[0], patient_id=rest[1], device_id=rest[2], kind=rest[3])
    raise ValueError(f"unknown topic layout: {topic!r}")
