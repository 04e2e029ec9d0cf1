"""Federated-learning messages: round announcements, signed global models, chunked updates, aggregates.

Binary bodies (model bytes, ciphertexts, float16 deltas) travel base64-encoded in `chunk_b64`, split
into chunks under the broker's message-size limit; each body carries its SHA-256 so a tampered or
truncated body is rejected before it is added to anything.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from shared.messages.envelope import Envelope, Id

Algorithm = Literal["fedavg", "fedprox"]
Mechanism = Literal["none", "gaussian", "laplace"]
Mode = Literal["sync", "async"]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DpConfig(_Payload):
    mechanism: Mechanism = "none"
    epsilon: float | None = Field(None, gt=0, description="Per-round ε of the aggregate")
    delta: float | None = Field(None, ge=0, lt=1)
    noise_scale: float = Field(0.0, ge=0, description="σ (Gaussian) or b (Laplace) of the aggregate noise")
    planned_clients: int = Field(1, ge=1, description="Noise shares are sized for this many clients")


class SelectionPolicy(_Payload):
    """Who trains this round (`shared.fl.selection`): the edge (from its registry) and each watch (from its own
    state) apply the same rule, so a watch that declines is one its edge does not wait for."""

    min_battery_pct: float = Field(50.0, ge=0, le=100, description="Below this, only a charging device trains")
    idle_cpu_util: float = Field(0.5, ge=0, le=1, description="A device busier than this trains only on the charger")
    slow_inference_ms: float = Field(100.0, gt=0, description="Slower model windows: asynchronous (not waited for)")


class ReleaseRequest(_Payload):
    """What a release round asks each selected client to sum. The federated additive model (`shared.fl.gam`): the
    count table of its examples on the public grid, or its clipped gradient sums over one term's bins. The
    federated trees (`shared.fl.trees`, ADR 0020): its class counts, its beat counts over a public grid of
    `cells` cells, or its gradient and hessian sums per (node, feature, bin) for the beats in `nodes` of class
    `klass`'s tree of the round being grown (with beat counts too, when `counts`). The DP forest
    (`shared.fl.forest`): the count table of its beats on the public grid, or its beat counts per (tree, leaf,
    class) of the published structure."""

    kind: Literal["gam_counts", "gam_gradients", "tree_classes", "tree_sketch", "tree_histogram", "forest_counts",
                  "forest_leaves"]
    term: int = Field(0, ge=0, le=100_000, description="gam_gradients: the feature whose bins are summed")
    klass: int = Field(0, ge=0, le=255, description="tree_histogram: whose tree of the current round")
    nodes: list[int] = Field(default_factory=list, max_length=256,
                             description="tree_histogram: the tree's open nodes whose beats are summed")
    cells: int = Field(0, ge=0, le=65_536, description="tree_sketch: cells of the public grid (`sketch_grid`)")
    counts: bool = Field(False, description="tree_histogram: beat counts as a third channel")

    @model_serializer(mode="wrap")
    def _without_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Fields at their defaults are left out: an additive release reads as it did before trees existed."""
        out: dict[str, Any] = handler(self)
        for name in ("term", "klass", "nodes", "cells", "counts"):
            if out.get(name) == type(self).model_fields[name].get_default(call_default_factory=True):
                out.pop(name, None)
        return out

    @model_validator(mode="after")
    def _what_each_tree_release_needs(self) -> ReleaseRequest:
        if self.kind == "tree_histogram" and (not self.nodes or any(n < 0 or n > 100_000 for n in self.nodes)
                                              or len(set(self.nodes)) != len(self.nodes)):
            raise ValueError("a tree_histogram release names 1 to 256 distinct nodes, each 0 … 100000")
        if self.kind == "tree_sketch" and self.cells < 2:
            raise ValueError("a tree_sketch release names its grid's cells (at least 2)")
        return self


class RoundPayload(_Payload):
    round_id: int = Field(ge=0)
    model_version: int = Field(ge=0, description="The global model clients must train from")
    model_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    params: int = Field(ge=1, le=10_000_000, description="Length of the update vector")
    participants: list[str] = Field(default_factory=list, max_length=10_000,
                                    description="Selected clients as 'site/device'; empty = everyone")
    mode: Mode = "sync"
    buffer_size: int = Field(0, ge=0, description="async (FedBuff): updates an edge buffers before forwarding")
    max_staleness: int = Field(4, ge=0, description="async: oldest base version accepted = model_version − this")
    algorithm: Algorithm = "fedavg"
    mu: float = Field(0.0, ge=0, description="FedProx proximal weight")
    epochs: int = Field(5, ge=1, le=100)
    batch_size: int = Field(32, ge=1, le=4096)
    lr: float = Field(0.001, gt=0, le=1)
    max_beats: int | None = Field(None, ge=1, description="Cap on local training beats per round")
    clip_norm: float = Field(gt=0)
    dp: DpConfig = DpConfig()
    encrypt: bool = True
    public_key_b64: str | None = Field(None, max_length=4096)
    quant_bits: int = Field(16, ge=4, le=32)
    quant_range: float | None = Field(None, gt=0, description="Packing range c (values in [-c, c]); default clip_norm")
    max_clients: int = Field(64, ge=1, description="Headroom of the packed sum (BatchCrypt)")
    min_clients: int = Field(2, ge=1, description="k: fewer reports and nothing is decrypted")
    deadline: datetime
    chunk_bytes: int = Field(64 * 1024, ge=1024)
    selection: SelectionPolicy = SelectionPolicy()
    #: "train": send the clipped, noised delta of local training (FedAvg). "release": send the vector `release`
    #: asks for, each example's part bounded by `clip_norm` by the learner, plus the noise share — a sum the
    #: coordinator turns into the next model itself (`Coordinator.run_release`)
    task: Literal["train", "release"] = "train"
    release: ReleaseRequest | None = None

    @model_serializer(mode="wrap")
    def _without_default_task(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A FedAvg round is written as before release rounds existed: a watch or edge not yet upgraded (the
        schema forbids fields it does not know) keeps reading it."""
        out: dict[str, Any] = handler(self)
        if self.task == "train":
            out.pop("task", None)
            out.pop("release", None)
        return out

    @model_validator(mode="after")
    def _release_iff_asked(self) -> RoundPayload:
        if (self.task == "release") != (self.release is not None):
            raise ValueError("a release round names what to release, and only a release round does")
        return self


class RoundMessage(Envelope):
    type: Literal["fl_round"] = "fl_round"
    payload: RoundPayload


class ModelPayload(_Payload):
    """A signed global model, published retained; devices refuse unsigned, wrongly signed or stale ones.

    Watches read it only when they hold no model or cannot apply the newest delta (`ModelDeltaPayload`)."""

    version: int = Field(ge=0)
    round_id: int = Field(ge=-1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    signature_b64: str = Field(max_length=256)
    model_b64: str = Field(max_length=2_000_000)


class ModelMessage(Envelope):
    type: Literal["fl_model"] = "fl_model"
    payload: ModelPayload


class ModelDeltaPayload(_Payload):
    """Version `version` as a step from `base_version` (`shared.fl.model_delta`), for watches that hold that base.

    The signature is the full model's (over version, round and the sha256 of the model the delta rebuilds),
    so a watch verifies what it rebuilt exactly as it would the whole model. `base_*` are not signed: a wrong
    base only makes the rebuilt sha256 differ from the signed one, and the delta is refused.
    """

    version: int = Field(ge=1)
    round_id: int = Field(ge=-1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the rebuilt full model (signed)")
    signature_b64: str = Field(max_length=256)
    base_version: int = Field(ge=0)
    base_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    delta_b64: str = Field(max_length=2_000_000)


class ModelDeltaMessage(Envelope):
    type: Literal["fl_model_delta"] = "fl_model_delta"
    payload: ModelDeltaPayload


class ChunkPayload(_Payload):
    """One chunk of a client update (watch → edge) or of an edge aggregate (edge → cloud)."""

    round_id: int = Field(ge=0)
    base_version: int = Field(ge=0)
    chunk_index: int = Field(ge=0)
    chunk_count: int = Field(ge=1, le=4096)
    body_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    body_bytes: int = Field(ge=0, le=64 * 1024 * 1024)
    encrypted: bool
    clients: int = Field(1, ge=1, description="Client updates summed into this body (1 for a client update)")
    contributors: list[Id] = Field(default_factory=list, max_length=4096)
    samples: int = Field(0, ge=0, description="Training beats behind this update (sum for an aggregate)")
    chunk_b64: str = Field(max_length=400_000)


class UpdateMessage(Envelope):
    type: Literal["fl_update"] = "fl_update"
    payload: ChunkPayload


class AggregateMessage(Envelope):
    type: Literal["fl_aggregate"] = "fl_aggregate"
    payload: ChunkPayload
