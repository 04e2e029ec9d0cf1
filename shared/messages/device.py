"""Device messages: vitals telemetry, presence, and commands sent to devices."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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
