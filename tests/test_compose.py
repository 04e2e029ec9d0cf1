"""The multi-host deployment in compose/: the compose file validates and wires every service.

This machine has no Docker daemon, so only `docker-compose config` runs here (Debian's
docker-compose 1.29); building and starting the stack is documented in docs/deploy.md.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import skip_or_fail

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "compose" / "docker-compose.yml"
BROKER_IN_CONTAINER = "/mosquitto/config/pki/broker"
CREDENTIALS_IN_CONTAINER = "/run/cardiomesh/credentials"

INFRA = {"mosquitto", "redis", "postgres"}
OBSERVABILITY = {"prometheus", "grafana"}
#: the long-running services that serve GET /metrics (the web app and Celery workers keep their own counts)
SCRAPED = {"edge", "edge-2", "ingest", "watches", "phones"}
HOSTS = {"edge": "edge", "edge-2": "edge", "ingest": "cloud", "web": "web", "watches": "watches", "phones": "phones"}
CARDIOMESH_SERVICES = {"edge", "edge-2", "ingest", "worker", "worker-emergency", "web", "watches", "phones"}
COMMANDS = {
    "edge": ["edge"],
    "edge-2": ["edge"],
    "ingest": ["cloud"],
    "worker": ["worker"],
    "worker-emergency": ["worker", "--queue", "reports-emergency"],
    "web": ["web"],
    "watches": ["watch", "--synthetic", "--count", "4"],
    "phones": ["phone", "--count", "4"],
}


def _need_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        skip_or_fail(f"{name} is not installed", "tools must be present")
    return path


@pytest.fixture(scope="module")
def compose_config() -> dict[str, Any]:
    """The compose file as docker-compose itself resolves it (anchors merged, env interpolated)."""
    docker_compose = _need_tool("docker-compose")
    result = subprocess.run(
        [docker_compose, "-f", str(COMPOSE_FILE), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "CARDIOMESH_PSEUDONYM_KEY": "a-deployment-secret",
             "CARDIOMESH_DATA_KEYS": "a-fernet-key", "GRAFANA_ADMIN_PASSWORD": "a-grafana-secret"},
    )
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    config = yaml.safe_load(result.stdout)
    assert isinstance(config, dict)
    return config


def _directives(path: Path) -> dict[str, list[str]]:
    """Mosquitto config as {directive: [value, ...]}, comments and blank lines dropped."""
    found: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        found.setdefault(key, []).append(value.strip())
    return found


def test_compose_refuses_to_start_without_a_pseudonym_key() -> None:
    docker_compose = _need_tool("docker-compose")
    env = {k: v for k, v in os.environ.items() if k != "CARDIOMESH_PSEUDONYM_KEY"}
    env["CARDIOMESH_DATA_KEYS"] = "a-fernet-key"
    env["GRAFANA_ADMIN_PASSWORD"] = "a-grafana-secret"
    result = subprocess.run([docker_compose, "-f", str(COMPOSE_FILE), "config"], capture_output=True, text=True,
                            timeout=60, cwd=ROOT, env=env)
    assert result.returncode != 0 and "CARDIOMESH_PSEUDONYM_KEY" in result.stderr


def test_compose_file_validates_with_every_service(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    assert set(services) == INFRA | CARDIOMESH_SERVICES | OBSERVABILITY


def test_a_second_edge_hub_owns_the_other_half_of_the_patients_when_asked_for(
        compose_config: dict[str, Any]) -> None:
    from shared.settings import Settings

    services = compose_config["services"]
    second = services["edge-2"]
    assert second["profiles"] == ["sharded"]  # only with --profile sharded
    assert second["environment"]["CARDIOMESH_EDGE_ID"] == "edge-2"
    assert second["environment"]["CARDIOMESH_EDGE_SHARD"] == "1/2"
    assert services["edge"]["environment"]["CARDIOMESH_EDGE_SHARD"] in ("", "0/2")
    assert Settings(edge_shard=services["edge"]["environment"]["CARDIOMESH_EDGE_SHARD"]).edge_shard in (None, "0/2")


def test_prometheus_scrapes_every_metrics_endpoint_and_grafana_reads_real_metric_names(
        compose_config: dict[str, Any]) -> None:
    import json

    services = compose_config["services"]
    scrape = yaml.safe_load((ROOT / "compose" / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in scrape["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {f"{name}:9100" for name in SCRAPED}
    for name in SCRAPED:
        env = services[name]["environment"]
        assert env["CARDIOMESH_METRICS_PORT"] == "9100" and env["CARDIOMESH_METRICS_HOST"] == "0.0.0.0"
    dashboard = json.loads((ROOT / "compose" / "grafana" / "dashboards" / "cardiomesh.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    sources = "".join(p.read_text() for d in ("edge_hub", "cloud_expert", "phone_agent", "watch_agent")
                      for p in (ROOT / d).rglob("*.py"))
    for expr in exprs:
        assert "cardiomesh_" in expr, expr
        for latency in re.findall(r'name="([a-z_]+_ms)"', expr):  # every timed name is one the code observes
            assert f'"{latency}"' in sources, latency


def test_cardiomesh_services_share_the_image_and_run_their_subcommand(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    for name in CARDIOMESH_SERVICES:
        service = services[name]
        assert service["build"]["dockerfile"] == "compose/Dockerfile", name
        assert service["command"] == COMMANDS[name], name
    assert (ROOT / "compose" / "Dockerfile").is_file()


def test_every_cardiomesh_service_gets_the_bus_db_and_broker_urls(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    for name in CARDIOMESH_SERVICES:
        env = services[name]["environment"]
        assert env["CARDIOMESH_MQTT_URL"] == "mqtts://mosquitto:8883", name  # TLS by default
        assert env["CARDIOMESH_MQTT_CREDENTIALS_DIR"] == CREDENTIALS_IN_CONTAINER, name
        if not name.startswith("worker"):  # workers never connect to the broker: they hold no MQTT credentials
            mounts = [str(v) for v in services[name]["volumes"]]
            assert [m for m in mounts if CREDENTIALS_IN_CONTAINER in m] == [
                f"{ROOT}/compose/pki/hosts/{HOSTS[name]}:{CREDENTIALS_IN_CONTAINER}:ro"], (name, mounts)
        assert env["CARDIOMESH_DATABASE_URL"] == "postgresql+psycopg://cardiomesh@postgres:5432/cardiomesh", name
        assert env["CARDIOMESH_CELERY_BROKER_URL"] == "redis://redis:6379/0", name
        assert env["CARDIOMESH_SITE"], name


def test_services_wait_for_healthy_infrastructure(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    for name in INFRA:
        assert "healthcheck" in services[name], name
    for name in CARDIOMESH_SERVICES:
        depends_on = services[name]["depends_on"]
        assert depends_on["mosquitto"]["condition"] == "service_healthy", name
    for name in ("ingest", "worker", "web"):
        assert set(services[name]["depends_on"]) == INFRA, name


def test_worker_is_scalable(compose_config: dict[str, Any]) -> None:
    worker = compose_config["services"]["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker  # a fixed host port would stop a second replica
    assert worker.get("deploy", {}).get("replicas", 1) >= 2


def test_web_publishes_the_dashboard_port(compose_config: dict[str, Any]) -> None:
    web = compose_config["services"]["web"]
    assert web["environment"]["CARDIOMESH_WEB_HOST"] == "0.0.0.0"
    assert any(str(port.get("target")) == "8000" for port in web["ports"])


def test_broker_runs_the_provisioned_tls_configuration(compose_config: dict[str, Any]) -> None:
    mosquitto = compose_config["services"]["mosquitto"]
    assert mosquitto["image"] == "eclipse-mosquitto:2"
    assert mosquitto["command"] == ["mosquitto", "-c", f"{BROKER_IN_CONTAINER}/mosquitto.conf"]
    mounts = [str(volume) for volume in mosquitto["volumes"]]
    assert any(f"compose/pki/broker:{BROKER_IN_CONTAINER}:ro" in m for m in mounts), mounts
    assert [str(p.get("target")) for p in mosquitto["ports"]] == ["8883"]  # no plain-TCP port published
    check = mosquitto["healthcheck"]["test"]
    assert "--cert" in check and f"{BROKER_IN_CONTAINER}/health.crt" in check


def test_services_without_credentials_of_their_own_name_an_identity(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    assert services["phones"]["environment"]["CARDIOMESH_MQTT_IDENTITY"] == "phones-home-1"
    assert services["web"]["environment"]["CARDIOMESH_MQTT_IDENTITY"] == "operator-home-1"


def _provisioned_as_documented(tmp_path: Path) -> Path:
    """`cardiomesh provision` exactly as the compose file's header says, into tmp_path."""
    header = COMPOSE_FILE.read_text().split("services:")[0]
    assert "cardiomesh provision --site home-1 --devices 4 --out compose/pki" in header
    assert f"--broker-path {BROKER_IN_CONTAINER} --persistence /mosquitto/data" in header
    from cardiomesh.provision import provision

    provision(tmp_path / "pki", "home-1", 4, broker_path=BROKER_IN_CONTAINER, persistence_dir="/mosquitto/data")
    return tmp_path / "pki"


def test_provisioned_broker_config_is_tls_only_with_an_acl(tmp_path: Path) -> None:
    pki = _provisioned_as_documented(tmp_path)
    directives = _directives(pki / "broker" / "mosquitto.conf")
    assert directives["allow_anonymous"] == ["false"]
    assert directives["listener"] == ["8883"]
    assert directives["require_certificate"] == ["true"] and directives["use_identity_as_username"] == ["true"]
    assert directives["acl_file"] == [f"{BROKER_IN_CONTAINER}/acl"]
    assert directives["persistence"] == ["true"] and directives["set_tcp_nodelay"] == ["true"]
    identities = {p.stem for p in (pki / "clients").glob("*.crt")} - {"ca"}
    assert {"watch-4", "phone-4", "home-1-edge-1", "cloud-ingest", "phones-home-1", "operator-home-1"} <= identities
    bundles = {h.name: {p.name for p in h.iterdir()} for h in (pki / "hosts").iterdir()}
    assert "home-1-edge-1.cmdkey" in bundles["edge"] and "operator-home-1.cmdkey" in bundles["web"]
    assert not any(name.endswith(".cmdkey") for name in bundles["watches"] | bundles["phones"] | bundles["cloud"])
    assert "watch-1.key" not in bundles["phones"] and "commands.pub" in bundles["watches"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_local_mosquitto_accepts_the_provisioned_config(tmp_path: Path) -> None:
    """The local Mosquitto 2 parses the provisioned file (paths and port moved into tmp_path)."""
    mosquitto = _need_tool("mosquitto")
    pki = _provisioned_as_documented(tmp_path)
    port = _free_port()
    conf = pki / "broker" / "mosquitto.conf"
    text = conf.read_text().replace(BROKER_IN_CONTAINER, str(pki / "broker"))
    text = text.replace("/mosquitto/data/", f"{tmp_path}/")
    text = re.sub(r"(?m)^listener 8883$", f"listener {port} 127.0.0.1", text)
    if os.geteuid() == 0:  # as root mosquitto would drop to its own user, who cannot read the 0600 keys
        text = f"user {getpass.getuser()}\n" + text
    conf.write_text(text)

    process = subprocess.Popen(
        [mosquitto, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                pytest.fail(f"mosquitto rejected the config (exit {process.returncode}):\n{output}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"mosquitto did not listen on 127.0.0.1:{port} within 5 s")
    finally:
        process.terminate()
        process.wait(timeout=5)
