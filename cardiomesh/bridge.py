"""A site broker bridged to a central one (the two-tier deployment): the Mosquitto `connection` stanza.

The site's devices and edge talk to the site broker; the cloud (ingest, worker, web, FL coordinator) to the
central one. What crosses, in topics built by `shared.topics` so the bridge and the code cannot drift:

* out (site → central): escalations, full disclosures and summaries (the cloud's input), alerts, analyses
  and triages (drill hops for an operator at the centre), retained presence (the dashboard's drills find a
  watch by it) and the site's FL aggregates;
* in (central → site): reports and labels, and the FL round, model and model delta (retained);
* both: commands (an operator's drill command goes in, the edge's responses come out as drill hops).

Never across: 1 Hz vitals and live strip chunks (the edge summarises them, ADR 0014), FL client updates
(the edge sums them blind first). QoS 1 on every topic, and a persistent session on both ends
(`cleansession false`): while the link is down the site broker queues what goes out and the central broker
what comes in, so a cut loses nothing (`tests/integration/test_two_tier.py` cuts it for 30 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared import topics

ANY = topics.ANY


@dataclass(frozen=True, slots=True)
class BridgeTls:
    ca_file: Path
    cert_file: Path
    key_file: Path


def bridged_topics(site: str) -> list[tuple[str, str]]:
    """(pattern, direction) for every topic the bridge carries."""
    def kind(name: topics.DeviceKind) -> str:
        return topics.device(site, ANY, ANY, name)

    out = [kind(k) for k in ("escalation", "disclosure", "summary", "alert", "analysis", "triage")]
    out += [topics.presence(site, ANY), topics.fl_aggregate(ANY, site, ANY)]
    into = [kind("report"), kind("label"), topics.fl_round(ANY), topics.fl_model(ANY), topics.fl_model_delta(ANY)]
    return [(t, "out") for t in out] + [(t, "in") for t in into] + [(kind("cmd"), "both")]


def bridge_conf(site: str, *, central_host: str, central_port: int, tls: BridgeTls | None = None,
                username: str | None = None, password: str | None = None) -> str:
    """The stanza to append to the site broker's mosquitto.conf."""
    lines = [
        f"# CardioMesh: site {site} bridged to the central broker (cardiomesh bridge-config)",
        f"connection cardiomesh-{site}",
        f"address {central_host}:{central_port}",
        f"remote_clientid cardiomesh-bridge-{site}",
        "cleansession false",  # both ends keep the bridge's session: a cut loses nothing
        "local_cleansession false",
        "start_type automatic",
        "restart_timeout 1 15",  # reconnect after 1 s, backing off to 15 s
        "keepalive_interval 10",
        "try_private true",  # the central broker does not echo what the bridge sent (no loops on `both`)
        "notifications false",
    ]
    if username is not None:
        lines.append(f"remote_username {username}")
    if password is not None:
        lines.append(f"remote_password {password}")
    if tls is not None:
        lines += [f"bridge_cafile {tls.ca_file}", f"bridge_certfile {tls.cert_file}",
                  f"bridge_keyfile {tls.key_file}"]
    lines += [f"topic {pattern} {direction} 1" for pattern, direction in bridged_topics(site)]
    return "\n".join(lines) + "\n"
