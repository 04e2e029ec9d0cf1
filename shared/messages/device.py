"""Device messages: vitals telemetry, presence, and commands sent to devices."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.messages.envelope import EcgStrip, Envelope, Id


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VitalsPayload(_Payload):
    hr_bpm: float | None = Field(None, ge=0, le=400)
    n_beats: int = Field(ge=0, description="Beats in the window behind hr_bpm")
    window_s: float = Field(gt=0)
    stream_s: float = Field(ge=0, description="Stream time of this reading")
    signal_ok: bool = True
    # Left out of the JSON when None, so a watch without a learned model sends exactly what it sent before.
    model_variant: str | None = Field(
        None, max_length=32, pattern=r"^[a-z0-9_\-]+$", exclude_if=lambda v: v is None,
        description="The beat-model variant the watch runs now (full, small): small after it ran over its "
                    "inference budget")


class VitalsMessage(Envelope):
    type: Literal["vitals"] = "vitals"
    payload: VitalsPayload


Role = Literal["watch", "phone", "edge", "cloud", "worker", "web", "cli"]


class PresencePayload(_Payload):
    status: Literal["online", "offline"]
    role: Role
    paired_with: list[Id] = Field(default_factory=list, max_length=16)
    version: str = Field("0.1.0", max_length=32)


class PresenceMessage(Envelope):
    type: Literal["presence"] = "presence"
    payload: PresencePayload


class CapabilitiesPayload(_Payload):
    """What a device can do and how loaded it is now: retained, refreshed every `refresh_s`, read by the edge's
    registry for placement (who reads a strip) and training selection (who trains this round).

    Measured where the process can measure (cores, its CPU share, memory, model latency, outbox backlog);
    battery and link come from the device (a replayed watch simulates its battery). `None` is "unknown",
    never a guess.
    """

    role: Role
    refresh_s: float = Field(gt=0, le=3600, description="The next refresh comes within this long")
    cores: int = Field(ge=1, le=1024)
    cpu_util: float = Field(ge=0, le=1, description="Share of the device's cores this process used lately")
    mem_mb: float = Field(ge=0, description="Resident memory of the process")
    battery_pct: float | None = Field(None, ge=0, le=100)
    charging: bool | None = None
    link_quality: float | None = Field(None, ge=0, le=1, description="1 = good link; from the radio")
    outbox_backlog: int = Field(0, ge=0, description="Acknowledged messages not yet confirmed by the broker")
    model_variants: list[Annotated[str, StringConstraints(max_length=32)]] = Field(default_factory=list,
                                                                                    max_length=8)
    active_variant: str | None = Field(None, max_length=32)
    inference_ms: float | None = Field(None, ge=0, description="Recent median model latency per window")
    busy: bool = Field(False, description="Work is queued behind this device's own budget")


class CapabilitiesMessage(Envelope):
    type: Literal["capabilities"] = "capabilities"
    payload: CapabilitiesPayload


#: `alert_received`: the edge holds the alert (`alert_id`); the watch stops sending it again (watch_agent.awaiting)
CommandName = Literal["notify_wearer", "stream_strip", "stop_stream", "drill_inject", "alert_received"]
DrillScenario = Literal["vt", "vf", "af", "brady", "pause", "asystole", "tachy"]
DRILL_SCENARIOS: tuple[str, ...] = DrillScenario.__args__  # type: ignore[attr-defined]


class CommandPayload(_Payload):
    command: CommandName
    alert_id: Id | None = None
    level: Literal["info", "urgent", "emergency"] | None = None
    scenario: DrillScenario | None = Field(None, description="Only for drill_inject")
    duration_s: float | None = Field(None, gt=0, le=600)
    target: Id | None = Field(None, description="The device the command is for (signed with it)")
    signer: str | None = Field(None, max_length=64, description="Name of the key that signed (shared.crypto.commands)")
    signature: str | None = Field(None, max_length=128, description="Ed25519 over the message, base64")


class CommandMessage(Envelope):
    type: Literal["command"] = "command"
    payload: CommandPayload


class StripPayload(_Payload):
    """A live ECG chunk, streamed after an edge `stream_strip` command (rapid response)."""

    alert_id: Id | None = None
    strip: EcgStrip


class StripMessage(Envelope):
    type: Literal["strip"] = "strip"
    payload: StripPayload
