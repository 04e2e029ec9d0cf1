"""One settings object for every component, read from `CARDIOMESH_*` environment variables.

Defaults run the whole system on one machine with nothing installed: the embedded broker answers on
the configured MQTT URL, the cloud DB is a SQLite file and Celery uses a filesystem transport. Setting
`CARDIOMESH_MQTT_URL`, `CARDIOMESH_DATABASE_URL` and `CARDIOMESH_CELERY_BROKER_URL` moves the same code
onto Mosquitto, PostgreSQL and Redis.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_REPO_ROOT = Path(__file__).resolve().parent.parent


def _default_data_dir() -> Path | None:
    """`../shared/datasets` beside the repository, when it is there."""
    candidate = _REPO_ROOT.parent / "shared" / "datasets"
    return candidate if candidate.is_dir() else None


DEMO_PSEUDONYM_KEY = "cardiomesh-demo-key"


class Settings(BaseSettings):
    """Every `CARDIOMESH_*` setting. The README's configuration table is generated from these fields."""

    model_config = SettingsConfigDict(env_prefix="CARDIOMESH_", extra="ignore")

    mqtt_url: str = Field("mqtt://127.0.0.1:1883",
                          description="MQTT broker (MQTT 3.1.1): mqtt://host:port, or mqtts://host:8883 for TLS")
    mqtt_credentials_dir: Path | None = Field(
        None, description="This host's credentials from `cardiomesh provision` (clients/: ca.crt, <id>.crt/.key/"
        ".password); unset: anonymous (demo)")
    mqtt_identity: str | None = Field(
        None, description="Credentials for connections that have none under their own client id (services)")
    site: str = Field("home-1", description="Site (home or clinic) this edge hub and its devices belong to")
    state_dir: Path = Field(Path("var"), description="Where local state lives: outboxes, edge DB, cloud DB")
    database_url: str | None = Field(
        None, description="Cloud DB (SQLAlchemy URL); default: SQLite file in state_dir"
    )
    celery_broker_url: str | None = Field(
        None, description="Celery broker (e.g. redis://127.0.0.1:6379/0); default: filesystem queue"
    )
    data_dir: Path | None = Field(
        default_factory=_default_data_dir,
        description="PhysioNet datasets (holds mitdb/); default ../shared/datasets when present",
    )
    web_host: str = Field("127.0.0.1", description="Dashboard bind address")
    web_port: int = Field(8000, description="Dashboard port")
    max_payload_bytes: int = Field(
        512 * 1024, description="Largest MQTT payload a component accepts; bigger ones are rejected"
    )
    analysis_timeout_s: float = Field(
        5.0, description="How long the edge waits for phone findings before escalating without them"
    )
    edge_analysis: bool = Field(
        True, description="When no phone findings arrive in time, the edge reads the strip itself (shared analysis)"
    )
    edge_emergency_connection: bool = Field(
        True, description="The edge takes alerts (and sends the answers) on a second MQTT connection of its own, "
        "never behind telemetry; off: one connection (e.g. a broker that limits connections per identity)")
    edge_shard: str | None = Field(
        None, pattern=r"^\d{1,3}/\d{1,3}$", description="Several edge hubs per site: this hub owns the patients "
        "i of n (e.g. 0/2) by a stable hash of the pseudonymous id, and subscribes to their topics only; unset: all")
    summary_interval_s: float = Field(
        60.0, gt=0, description="How often the edge sends each patient's devices and heart-rate minutes to the cloud")
    report_sweep_s: float = Field(30.0, description="Report jobs unfinished for this long are re-enqueued")
    pseudonym_key: str = Field(
        DEMO_PSEUDONYM_KEY, description="HMAC key turning record/patient names into pseudonymous ids"
    )
    data_keys: str | None = Field(
        None, description="Fernet keys (comma-separated; the first encrypts) for strips, findings and reports "
        "at rest in the cloud DB; unset: stored in clear (demo). `cardiomesh db keygen` makes one")
    site_timezone: str = Field("UTC", description="IANA time zone the dashboard shows times in (e.g. Europe/Paris)")
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Serve GET /metrics (Prometheus) on this port; unset: metrics files only")
    metrics_host: str = Field("127.0.0.1", description="Address the /metrics endpoint binds (compose: 0.0.0.0)")
    watch_model: str | None = Field(
        None, description="The beat model a learned watch runs: a BeatNet .pt, the federated additive .npz "
        "(bench/results/model_additive_dp.npz) or the federated trees .npz (bench/results/model_trees.npz); unset: "
        "bench/results/model.pt with its small variant")
    watch_inference_budget_ms: float = Field(
        100.0, gt=0, description="Beat-model inference a learned watch may spend per second of ECG; over it for 3 s, "
        "it switches to the model's small variant (and back when the full one fits again)")
    watch_inference_slowdown_ms: float = Field(
        0.0, ge=0, description="Fault injection: CPU a learned watch burns (busy loop) per beat its full model "
        "classifies, the small variant in proportion to its cost; 0: none")
    log_level: str = Field("INFO", description="Python logging level")
    log_json: bool = Field(False, description="Log one JSON object per line (for log shippers)")

    @field_validator("edge_shard", mode="before")
    @classmethod
    def _blank_shard_is_none(cls, value: object) -> object:
        """Compose passes an unset `${CARDIOMESH_EDGE_SHARD:-}` as an empty string: one hub, all patients."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in {"mqtt", "tcp", "mqtts", "ssl"} or not parsed.hostname:
            raise ValueError(f"expected mqtt://host:port or mqtts://host:port, got {value!r}")
        return value

    @property
    def mqtt_host(self) -> str:
        return urlparse(self.mqtt_url).hostname or "127.0.0.1"

    def deployment_problems(self) -> list[str]:
        """Why this configuration must not serve real patients: a provisioned deployment (credentials set)
        refuses the demo's default secrets. Empty for the demo."""
        if self.mqtt_credentials_dir is None:
            return []
        problems = []
        if self.pseudonym_key == DEMO_PSEUDONYM_KEY:
            problems.append("CARDIOMESH_PSEUDONYM_KEY is the demo key: set a secret of your own (it links "
                            "pseudonymous ids to record names)")
        return problems

    def cloud_problems(self) -> list[str]:
        """What a provisioned cloud process (ingest, worker, web) additionally needs."""
        problems = self.deployment_problems()
        if self.mqtt_credentials_dir is not None and not self.data_keys:
            problems.append("CARDIOMESH_DATA_KEYS is unset: strips and reports would be stored in clear "
                            "(`cardiomesh db keygen` makes a key)")
        return problems

    @property
    def mqtt_tls(self) -> bool:
        return urlparse(self.mqtt_url).scheme in {"mqtts", "ssl"}

    @property
    def mqtt_port(self) -> int:
        return urlparse(self.mqtt_url).port or (8883 if self.mqtt_tls else 1883)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.state_dir / 'cloud.db').resolve()}"

    @property
    def mitdb_dir(self) -> Path | None:
        return self._dataset("mitdb")

    @property
    def vfdb_dir(self) -> Path | None:
        return self._dataset("vfdb")

    def _dataset(self, name: str) -> Path | None:
        if self.data_dir is None:
            return None
        candidate = self.data_dir / name
        return candidate if candidate.is_dir() else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
