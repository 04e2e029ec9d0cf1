"""The `cardiomesh` command: one verb per component, plus the demo and drills.

Commands are thin: they read settings, build the component and wait for Ctrl-C. Domain errors are
turned into a one-line message and exit code 1 here, and only here.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shared import logs
from shared.metrics import Counters, MetricsFile, MetricsServer, metrics_path
from shared.settings import Settings, get_settings

if TYPE_CHECKING:  # the CLI imports SQLAlchemy only in the commands that use the DB
    from sqlalchemy.orm import Session

app = typer.Typer(
    help="CardioMesh: cardiac monitoring on a message bus — watches, phones, edge hub, cloud.\n\n"
    "Start with `cardiomesh demo`: it runs everything on this machine. Settings come from CARDIOMESH_* "
    "environment variables (see README).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
)
fl_app = typer.Typer(help="Federated learning of the watch detector: data stays on the watch, the model moves.",
                      no_args_is_help=True)
drill_app = typer.Typer(help="Anomaly drills: splice a real episode into a running watch and follow it.",
                        no_args_is_help=True)
dead_app = typer.Typer(
    help="Messages whose handler failed (a database failover, a bug): kept on disk, retried with backoff by the "
    "running component, parked after 12 tries for you to look at and replay. Nothing is dropped silently.",
    no_args_is_help=True)
app.add_typer(drill_app, name="drill")
app.add_typer(dead_app, name="dead-letters")
db_app = typer.Typer(help="The cloud database: keys for encryption at rest.", no_args_is_help=True)
app.add_typer(db_app, name="db")
patient_app = typer.Typer(help="A patient's data, by pseudonymous id.", no_args_is_help=True)
app.add_typer(patient_app, name="patient")
app.add_typer(fl_app, name="fl")
user_app = typer.Typer(help="Dashboard accounts: roles, sites, API tokens (every act is audited).",
                       no_args_is_help=True)
app.add_typer(user_app, name="user")

log = logging.getLogger("cardiomesh")


def _setup(verbose: bool = False, *, serving: bool = False, cloud: bool = False) -> Settings:
    """Settings and logging; a component that serves (`serving`) refuses demo secrets in a provisioned
    deployment, and a cloud one (`cloud`) also unencrypted storage."""
    settings = get_settings()
    logs.configure("DEBUG" if verbose else settings.log_level, json_lines=settings.log_json)
    problems = settings.cloud_problems() if cloud else settings.deployment_problems() if serving else []
    if problems:
        raise _fail("; ".join(problems))
    return settings


class _Exporters:
    """A component's metrics file, and its /metrics endpoint when `CARDIOMESH_METRICS_PORT` is set."""

    def __init__(self, settings: Settings, component: str, counters: Counters) -> None:
        self.file = MetricsFile(counters, component, metrics_path(settings.state_dir, component)).start()
        self.server = None if settings.metrics_port is None else MetricsServer(
            counters, component, host=settings.metrics_host, port=settings.metrics_port).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.file.stop()


def _export(settings: Settings, component: str, counters: Counters) -> _Exporters:
    """Counters to `state_dir/metrics/<component>.prom` every 5 s (`cardiomesh metrics` reads them), and on
    `GET /metrics` when a metrics port is configured."""
    return _Exporters(settings, component, counters)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]


@app.command()
def demo(
    watches: Annotated[int, typer.Option(min=1, max=48, help="Watch+phone pairs, one per MIT-BIH record with a "
                                         "known arrhythmia (synthetic ECG when the data is absent).")] = 4,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds (default: run until Ctrl-C).",
                                                   min=1)] = None,
    summary_json: Annotated[Path | None, typer.Option(help="Write the run's summary JSON here on exit.")] = None,
    speed: Annotated[float, typer.Option(help="Replay speed: 1 = real time.", min=0.1, max=50)] = 1.0,
    web: Annotated[bool, typer.Option(help="Serve the dashboard.")] = True,
    verbose: Verbose = False,
) -> None:
    """Run the whole system on this machine: broker (Mosquitto if one answers, else embedded), edge hub,
    cloud ingest, a Celery worker, the dashboard and N watch+phone pairs.

    Prints the dashboard URL and a live progress line; on Ctrl-C or after --duration it drains, shuts
    down cleanly and (with --summary-json) writes {"alerts", "analyses", "responses", "escalations",
    "reports", "lost"} — lost = alerts that never got a triage decision, or escalated without a report.
    """
    from cardiomesh.demo import DemoOptions, run_demo

    settings = _setup(verbose)
    summary = run_demo(settings, DemoOptions(watches=watches, duration_s=duration, speed=speed, web=web))
    text = json.dumps(summary, indent=2)
    if summary_json is not None:
        summary_json.write_text(text + "\n")
    typer.echo(text)


@app.command()
def watch(
    record: Annotated[list[str] | None, typer.Option("--record", "-r", help="Source to replay: mitdb/203, a .hea "
                                                     "or .csv path, or synthetic[:tachycardia,pause,...]. Repeat "
                                                     "for several watches.")] = None,
    synthetic: Annotated[bool, typer.Option(help="Replay synthetic ECG with injected episodes (for demos).")] = False,
    count: Annotated[int, typer.Option(min=1, max=200, help="Number of watches in this process.")] = 1,
    speed: Annotated[float, typer.Option(min=0.1, max=100, help="Replay speed (1 = real time).")] = 1.0,
    start: Annotated[float, typer.Option(min=0, help="Start this many seconds into each record.")] = 0.0,
    reader: Annotated[bool, typer.Option(help="Read each alert strip on the watch with the shared rhythm reader "
                                               "(bench/results/rhythm.pt) and send its probabilities as evidence; "
                                               "adds its time before the alert leaves.")] = False,
    verbose: Verbose = False,
) -> None:
    """Run simulated watches: replay ECG, detect on the device, publish vitals and alerts."""
    from cardiomesh.runtime import awaiting_factory, stop_event_on_signals, transport_factory
    from watch_agent.fleet import WatchFleet, WatchSpec

    settings = _setup(verbose, serving=True)
    sources = list(record or [])
    if synthetic or not sources:
        sources = sources or ["synthetic:tachycardia,pause,irregular,bradycardia"]
    specs = [WatchSpec(sources[i % len(sources)], start) for i in range(max(count, len(sources)))]
    try:
        fleet = WatchFleet(settings, transport_factory(settings), specs, speed=speed, rhythm_reader=reader,
                           make_awaiting=awaiting_factory(settings))
    except ValueError as exc:  # SourceError, or a provisioned watch missing its trusted signers
        raise _fail(str(exc)) from None
    stop = stop_event_on_signals()
    fleet.start()
    exporter = _export(settings, "watches", fleet.counters)
    typer.echo(f"{len(fleet.watches)} watch(es) replaying at {speed}× on {settings.mqtt_url}; Ctrl-C to stop")
    stop.wait()
    fleet.stop()
    exporter.stop()


@app.command()
def phone(
    count: Annotated[int, typer.Option(min=1, max=500, help="Most phones to run; each pairs with a watch that "
                                       "announces it in its presence.")] = 1,
    verbose: Verbose = False,
) -> None:
    """Run paired phones: analyse each alert's strip locally (neurokit2) and publish the findings."""
    from cardiomesh.runtime import stop_event_on_signals, transport_factory
    from phone_agent.app import PhoneFleet

    settings = _setup(verbose, serving=True)
    fleet = PhoneFleet(settings, transport_factory(settings), limit=count)
    stop = stop_event_on_signals()
    fleet.start()
    exporter = _export(settings, "phones", fleet.counters)
    typer.echo(f"phones waiting for watches on site {settings.site}; Ctrl-C to stop")
    stop.wait()
    fleet.stop()
    exporter.stop()


@app.command()
def analyze(
    paths: Annotated[list[Path], typer.Argument(help="WFDB records (.hea/.dat/.mat or the path without "
                                                "extension), CSV (time_s,mv or one mV column with --fs), "
                                                "EDF files, or directories (every record in them).")],
    fs: Annotated[float | None, typer.Option(help="Sampling rate (Hz) of single-column CSV files.", min=1)] = None,
    start: Annotated[float, typer.Option(help="Start of the analysed window, seconds.", min=0)] = 0.0,
    seconds: Annotated[float, typer.Option(help="Length of the analysed window, seconds.", min=1)] = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per record per line.")] = False,
    verbose: Verbose = False,
) -> None:
    """Analyse ECG files as the phone would: rhythm, quality, HR, intervals (PR, QRS, QT, QTc), ectopy.

    Bad files get a one-line error on stderr and the others are still analysed; the exit code is 1 only
    when nothing could be analysed.
    """
    from phone_agent.batch import analyze_paths, summary_text, to_row

    _setup(verbose)
    many = len(paths) > 1 or any(p.is_dir() for p in paths)

    def _progress(i: int, path: Path) -> None:
        if many:
            typer.echo(f"[{i}] {path}", err=True)

    analysed = 0
    for outcome in analyze_paths(paths, fs=fs, start_s=start, seconds=seconds, progress=_progress):
        if outcome.analysis is None:
            typer.secho(f"error: {outcome.error}", fg=typer.colors.RED, err=True)
            if as_json:
                typer.echo(json.dumps(to_row(outcome)))
            continue
        analysed += 1
        typer.echo(json.dumps(to_row(outcome)) if as_json else summary_text(outcome))
    if analysed == 0:
        raise typer.Exit(code=1)


@app.command()
def edge(
    edge_id: Annotated[str, typer.Option(help="This hub's id (unique per site).", envvar="CARDIOMESH_EDGE_ID")]
    = "edge-1",
    verbose: Verbose = False,
) -> None:
    """Run the edge hub: fuse devices per patient, triage, respond at once, escalate to the cloud."""
    from cardiomesh.runtime import mqtt_transport, stop_event_on_signals
    from edge_hub.app import EdgeHub
    from shared.metrics import Counters

    settings = _setup(verbose, serving=True)
    counters = Counters()
    transport = mqtt_transport(settings, f"{settings.site}-{edge_id}", outbox=True, counters=counters)
    # alerts and the answers to them on a connection of their own (same identity): never behind telemetry
    fast = (mqtt_transport(settings, f"{settings.site}-{edge_id}~emergency", outbox=True, counters=counters)
            if settings.edge_emergency_connection else None)
    try:
        hub = EdgeHub(settings, transport, edge_id=edge_id, counters=counters, emergency_transport=fast)
    except ValueError as exc:  # provisioned without its command-signing key
        raise _fail(str(exc)) from None
    hub.start()
    if fast is not None:
        fast.start()
    transport.start()
    _tune_for_latency()
    exporter = _export(settings, f"edge-{edge_id}", hub.counters)
    stop = stop_event_on_signals()
    typer.echo(f"edge hub {edge_id} serving site {settings.site} on {settings.mqtt_url}; Ctrl-C to stop")
    stop.wait()
    hub.stop()
    transport.stop()
    if fast is not None:
        fast.stop()
    exporter.stop()


def _tune_for_latency() -> None:
    """For a process whose job is answering alerts in milliseconds (the edge hub): hand the GIL over every
    1 ms instead of 5 ms (an alert's hops cross threads: network → dispatcher → network, and each hand-over
    could wait a whole interval behind a thread parsing telemetry), and move everything loaded at start-up out
    of the garbage collector's view so its full collections stay short."""
    import gc
    import sys

    sys.setswitchinterval(0.001)
    gc.collect()
    gc.freeze()


@app.command()
def cloud(verbose: Verbose = False) -> None:
    """Run the cloud ingest: store escalations, queue report jobs, announce finished reports, sweep lost jobs."""
    from cardiomesh.runtime import mqtt_transport, stop_event_on_signals
    from cloud_expert.service import CloudService

    settings = _setup(verbose, serving=True, cloud=True)
    service = CloudService(settings, mqtt_transport(settings, "cloud-ingest", outbox=True))
    service.start()
    exporter = _export(settings, "cloud-ingest", service.counters)
    stop = stop_event_on_signals()
    typer.echo(f"cloud ingest on {settings.mqtt_url}, DB {settings.effective_database_url.split('@')[-1]}")
    stop.wait()
    service.stop()
    exporter.stop()


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(min=1, max=32, help="Worker processes.")] = 1,
    queue: Annotated[list[str] | None, typer.Option(help="Queue(s) to serve; repeatable. Default: the emergency "
                                                    "queue and the routine one (CARDIOMESH_CELERY_*QUEUE).")]
    = None,
    verbose: Verbose = False,
) -> None:
    """Run a Celery worker that renders reports (broker: CARDIOMESH_CELERY_BROKER_URL or a local folder).

    Emergency episodes' reports go to a queue of their own: give a dedicated worker only that queue
    (compose's `worker-emergency`) so an emergency never waits behind routine reports."""
    import subprocess

    from cloud_expert.worker.celery_app import EMERGENCY_QUEUE, QUEUE

    _setup(verbose, serving=True, cloud=True)
    argv = [sys.executable, "-m", "celery", "-A", "cloud_expert.worker.celery_app", "worker",
            "--loglevel", "DEBUG" if verbose else "INFO", "-c", str(concurrency),
            "-Q", ",".join(queue or [EMERGENCY_QUEUE, QUEUE])]
    raise typer.Exit(subprocess.call(argv))


@app.command(name="web")
def web_cmd(
    host: Annotated[str | None, typer.Option(help="Bind address (default CARDIOMESH_WEB_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default CARDIOMESH_WEB_PORT).")] = None,
    verbose: Verbose = False,
) -> None:
    """Serve the clinician dashboard and the JSON API (OpenAPI docs at /docs)."""
    import uvicorn

    from cloud_expert.web.main import create_app

    settings = _setup(verbose, serving=True, cloud=True)
    uvicorn.run(create_app(settings), host=host or settings.web_host, port=port or settings.web_port,
                log_level="info" if verbose else "warning")


@app.command()
def provision(
    site: Annotated[str, typer.Option(help="The site (home or clinic) to provision.")] = "home-1",
    devices: Annotated[int, typer.Option(min=1, max=10_000, help="Watches, each paired with a phone.")] = 4,
    edges: Annotated[int, typer.Option(min=1, max=64, help="Edge hubs (edge-1 … edge-N), each owning a share of "
                                       "the patients (CARDIOMESH_EDGE_SHARD=i/N).")] = 1,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: <state_dir>/pki/<site>).")] = None,
    tls_port: Annotated[int, typer.Option(help="The broker's TLS listener.")] = 8883,
    password_port: Annotated[int, typer.Option(
        help="Also a username/password listener on this port (plain TCP: only behind TLS or on localhost).")] = 0,
    server_name: Annotated[list[str] | None, typer.Option(
        help="Names the broker is reached by (certificate SANs; repeatable).")] = None,
    broker_path: Annotated[str | None, typer.Option(
        help="Where the broker will see broker/ (e.g. /mosquitto/config/pki in compose).")] = None,
    persistence: Annotated[str | None, typer.Option(help="Broker persistence folder (e.g. /mosquitto/data).")] = None,
    broker_user: Annotated[str | None, typer.Option(
        help="The user a broker started as root runs as (must own broker/); default mosquitto's own.")] = None,
    revoke_id: Annotated[str | None, typer.Option("--revoke", help="Revoke one identity of an existing --out.")]
    = None,
) -> None:
    """Create a site's CA, a certificate and password for every watch, phone and service, and the broker's
    configuration: TLS with client certificates, no anonymous clients, an ACL per identity.

    Then: run `mosquitto -c OUT/broker/mosquitto.conf`, give each host its files from OUT/clients/, and set
    CARDIOMESH_MQTT_URL=mqtts://broker:8883 and CARDIOMESH_MQTT_CREDENTIALS_DIR (docs/security.md)."""
    from cardiomesh.provision import ProvisionError, revoke
    from cardiomesh.provision import provision as run_provision

    settings = _setup()
    folder = out or Path(settings.state_dir) / "pki" / site
    try:
        if revoke_id is not None:
            ident = revoke(folder, revoke_id)
            typer.echo(f"revoked {ident.name} ({ident.role}): CRL, password file and ACL updated under "
                       f"{folder / 'broker'}; send the broker SIGHUP (password/ACL) and restart it (CRL)")
            return
        done = run_provision(folder, site, devices, tls_port=tls_port, password_port=password_port or None,
                             server_names=tuple(server_name or ("localhost", "127.0.0.1", "mosquitto")),
                             broker_path=broker_path, persistence_dir=persistence, run_as=broker_user,
                             edges=edges)
    except (ProvisionError, ValueError) as exc:
        raise _fail(str(exc)) from None
    roles: dict[str, int] = {}
    for ident in done.identities:
        roles[ident.role] = roles.get(ident.role, 0) + 1
    typer.echo(f"site {site}: {len(done.identities)} identities ("
               + ", ".join(f"{n} {r}" for r, n in roles.items()) + f") under {folder}")
    typer.echo(f"broker: mosquitto -c {done.broker / 'mosquitto.conf'}")
    typer.echo(f"clients: {done.clients} (keys are 0600; give each host only its own)")


@app.command("bridge-config")
def bridge_config(
    central: Annotated[str, typer.Option(help="The central broker, HOST:PORT.")],
    site: Annotated[str | None, typer.Option(help="The site (default: CARDIOMESH_SITE).")] = None,
    ca_file: Annotated[Path | None, typer.Option(help="CA of the central broker (TLS).")] = None,
    cert_file: Annotated[Path | None, typer.Option(help="This bridge's client certificate (TLS).")] = None,
    key_file: Annotated[Path | None, typer.Option(help="Its key (TLS).")] = None,
) -> None:
    """Print the Mosquitto bridge stanza that connects this site's broker to the central one: what goes out
    (escalations, disclosures, summaries, drill hops, presence, FL aggregates), what comes in (reports, labels,
    FL rounds and models) and commands both ways; never vitals, live strips or FL client updates.

    Example: cardiomesh bridge-config --central central.example:8883 --site home-1 >> site-mosquitto.conf
    """
    from cardiomesh.bridge import BridgeTls, bridge_conf

    host, _, port = central.rpartition(":")
    if not host or not port.isdigit():
        raise _fail(f"--central must be HOST:PORT, got {central!r}")
    given = [f for f in (ca_file, cert_file, key_file) if f is not None]
    if given and len(given) != 3:
        raise _fail("TLS needs all three of --ca-file, --cert-file and --key-file")
    tls = BridgeTls(ca_file, cert_file, key_file) if ca_file and cert_file and key_file else None
    typer.echo(bridge_conf(site or get_settings().site, central_host=host, central_port=int(port), tls=tls), nl=False)


@app.command()
def metrics() -> None:
    """What every component on this host has counted: rejections by reason (bad payloads, forged or stale
    commands, oversize), duplicates, dead letters. Read from <state_dir>/metrics/*.prom, which each running
    component rewrites every 5 s (Prometheus text format: point node-exporter's textfile collector there)."""
    import re

    settings = _setup()
    files = sorted((Path(settings.state_dir) / "metrics").glob("*.prom"))
    if not files:
        typer.echo(f"no metrics yet under {Path(settings.state_dir) / 'metrics'} (start a component first)")
        return
    line = re.compile(r'^cardiomesh_(rejected|events)_total\{component="([^"]*)",(?:reason|name)="([^"]*)"\} (\d+)$')
    for path in files:
        typer.echo(path.stem)
        for text in path.read_text().splitlines():
            m = line.match(text)
            if m:
                kind, _component, name, value = m.groups()
                typer.echo(f"  {'rejected ' if kind == 'rejected' else ''}{name:<40} {value:>8}")


@db_app.command("keygen")
def db_keygen() -> None:
    """Print a new data key for CARDIOMESH_DATA_KEYS (strips, findings and reports encrypted at rest). Keep it
    like a password: whoever has it reads the reports; losing it loses them."""
    from cloud_expert.db.encryption import new_key

    typer.echo(new_key())


@db_app.command("rotate-keys")
def db_rotate_keys() -> None:
    """Re-encrypt every stored strip, finding and report under the first key of CARDIOMESH_DATA_KEYS (values
    written in clear are encrypted too). Rotation: put the new key first, run this, then drop the old key."""
    from cloud_expert.db import make_engine, make_session_factory, upgrade_to_head
    from cloud_expert.db.encryption import DataKeyError, configure
    from cloud_expert.db.rotation import rotate

    settings = _setup()
    if not settings.data_keys:
        raise _fail("CARDIOMESH_DATA_KEYS is unset: nothing to encrypt with")
    try:
        configure(settings.data_keys)
    except DataKeyError as exc:
        raise _fail(str(exc)) from None
    url = settings.effective_database_url
    upgrade_to_head(url)
    engine = make_engine(url)
    try:
        done = rotate(make_session_factory(engine))
    except DataKeyError as exc:
        raise _fail(str(exc)) from None
    finally:
        engine.dispose()
    typer.echo(f"re-encrypted {done['episodes']} episode(s) and {done['reports']} report(s) under the first key")


@patient_app.command("erase")
def patient_erase(
    patient_id: Annotated[str, typer.Argument(help="The pseudonymous patient id (pt-…), as on reports.")],
    by: Annotated[str, typer.Option(help="Who erases (recorded in the audit trail).")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit trail), e.g. the request's reference.")],
    edge_db: Annotated[list[Path] | None, typer.Option(
        help="Also erase from this edge hub store (state_dir/<edge>.db); repeatable.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase a patient everywhere this host stores them: the cloud DB's episodes, report jobs and reports
    (one transaction, with an audit row of who, when, why and how much) and, with --edge-db, an edge's
    store. Cannot be undone."""
    from cloud_expert.erasure import erase_patient
    from edge_hub.store import EdgeStore
    from shared.messages import utcnow

    stores = _edge_stores(edge_db)
    if not yes and not typer.confirm(f"erase {patient_id} from the cloud DB"
                                     f"{' and ' + str(len(stores)) + ' edge store(s)' if stores else ''}?"):
        raise typer.Exit(1)
    with _cloud_transaction(ValueError) as session:
        erased = erase_patient(session, patient_id, by=by, reason=reason, now=utcnow())
    typer.echo(f"cloud: {erased.episodes} episode(s), {erased.reports} report(s), {erased.jobs} job(s) erased "
               f"(audit {erased.audit_id})")
    for path in stores:
        store = EdgeStore(path)
        typer.echo(f"edge {path}: {store.erase_patient(patient_id)} episode(s) erased")
        store.close()


@app.command("retention")
def retention(
    days: Annotated[int, typer.Option(min=1, help="Keep this many days of clinical data; older is deleted.")],
    by: Annotated[str, typer.Option(help="Who applies the policy (recorded in the audit trail).")],
    site: Annotated[str | None, typer.Option(help="Only this site's data (default: every site).")] = None,
    edge_db: Annotated[list[Path] | None, typer.Option(
        help="Also prune this edge hub store (state_dir/<edge>.db); repeatable.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Apply a retention period: delete episodes, report jobs and reports received more than DAYS ago from
    the cloud DB (one transaction, one audit row per patient touched) and, with --edge-db, finalized episodes
    of that age from an edge's store, with the seen message ids the bus now refuses as stale anyway.
    Open episodes are never pruned. Run it daily (cron, a systemd timer). Cannot be undone.

    Example: cardiomesh retention --days 2190 --by records-office --edge-db var/edge-home-1.db --yes
    """
    import time
    from datetime import timedelta

    from cloud_expert.erasure import apply_retention
    from edge_hub.store import EdgeStore
    from shared.messages import utcnow
    from shared.transport.freshness import DEFAULT_MAX_AGE_S, DEFAULT_SKEW_S

    stores = _edge_stores(edge_db)
    before = utcnow() - timedelta(days=days)
    if not yes and not typer.confirm(f"delete every episode received before {before:%Y-%m-%d %H:%M} UTC"
                                     f"{' on ' + site if site else ''}?"):
        raise typer.Exit(1)
    with _cloud_transaction(ValueError) as session:
        erased = apply_retention(session, before=before, by=by, site=site)
    typer.echo(f"cloud: {sum(e.episodes for e in erased)} episode(s), {sum(e.reports for e in erased)} report(s) "
               f"of {len(erased)} patient(s) deleted (received before {before:%Y-%m-%d}; audited per patient)")
    now = time.time()
    for path in stores:
        store = EdgeStore(path)
        episodes, seen = store.prune(episodes_before=now - days * 86400.0,
                                     seen_before=now - DEFAULT_MAX_AGE_S - DEFAULT_SKEW_S)
        store.close()
        typer.echo(f"edge {path}: {episodes} finalized episode(s), {seen} seen id(s) deleted")


@contextmanager
def _cloud_transaction(*refused: type[Exception]) -> Iterator[Session]:
    """One session on the configured cloud DB (migrated to head), committed when the block ends cleanly; an
    exception of the `refused` types becomes a clear CLI error (nothing committed)."""
    from cloud_expert.db import make_engine, make_session_factory, upgrade_to_head

    url = _setup().effective_database_url
    upgrade_to_head(url)
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            try:
                yield session
            except refused as exc:
                raise _fail(str(exc)) from None
            session.commit()
    finally:
        engine.dispose()


def _edge_stores(edge_db: list[Path] | None) -> list[Path]:
    """The --edge-db stores, every one present, or a clear error before anything is changed."""
    stores = list(edge_db or [])
    missing = [str(p) for p in stores if not p.exists()]
    if missing:
        raise _fail(f"no edge store at {', '.join(missing)}")
    return stores


@user_app.command("add")
def user_add(
    username: Annotated[str, typer.Argument(help="Sign-in name (letters, digits, . _ - @).")],
    role: Annotated[str, typer.Option(help="clinician | technician | operator (drills only) | admin.")],
    site: Annotated[list[str] | None, typer.Option(help="A site the user may see; repeatable. Default: all.")]
    = None,
    patient: Annotated[list[str] | None, typer.Option(help="A (pseudonymous) patient the user is assigned; "
                                                      "repeatable. Default: every patient of their sites.")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin "
                                                 "(scripts) instead of prompting.")] = False,
) -> None:
    """Create a dashboard account. The password (≥ 12 characters) is prompted for, twice, and kept only as
    an argon2id hash.

    Example: cardiomesh user add dr-lee --role clinician --site home-1 --site clinic-2
    """
    from cloud_expert.accounts import AccountError, add_user

    password = sys.stdin.readline().rstrip("\n") if password_stdin else typer.prompt(
        "password", hide_input=True, confirmation_prompt=True)
    with _cloud_transaction(AccountError) as session:
        add_user(session, username, password, role, list(site) if site else None,
                 patients=list(patient) if patient else None)
    typer.echo(f"user {username} ({role}) added, sites: {', '.join(site) if site else 'all'}, "
               f"patients: {', '.join(patient) if patient else 'all of those sites'}")


@user_app.command("assign")
def user_assign(
    username: Annotated[str, typer.Argument(help="The account.")],
    patient: Annotated[list[str] | None, typer.Option(help="A pseudonymous patient id; repeatable.")] = None,
    all_patients: Annotated[bool, typer.Option("--all-patients", help="Lift the limit: every patient of the "
                                               "user's sites.")] = False,
) -> None:
    """Limit a user to the patients assigned to them (within their sites), or lift the limit. Audited.

    Example: cardiomesh user assign dr-lee --patient p-3f9a --patient p-77c1
    """
    from cloud_expert.accounts import AccountError, assign_patients

    if bool(patient) == all_patients:
        raise typer.BadParameter("give --patient (one or more) or --all-patients")
    with _cloud_transaction(AccountError) as session:
        assign_patients(session, username, None if all_patients else list(patient or []))
    typer.echo(f"user {username}: " + ("every patient of their sites" if all_patients
                                       else f"patients {', '.join(patient or [])}"))


@user_app.command("list")
def user_list() -> None:
    """Every account: name, role, sites, assigned patients (* = all of those sites), active or disabled."""
    from sqlalchemy import select

    from cloud_expert.db import User

    with _cloud_transaction() as session:
        rows = [(u.username, u.role, u.sites, u.patients or "*", "disabled" if u.disabled else "active")
                for u in session.scalars(select(User).order_by(User.username))]
    for name, role, sites, patients, state in rows:
        typer.echo(f"{name:<24} {role:<11} sites {sites:<20} patients {patients:<20} {state}")
    if not rows:
        typer.echo("no users yet: cardiomesh user add NAME --role admin")


def _set_disabled(username: str, disabled: bool) -> None:
    from cloud_expert.accounts import AccountError, set_disabled

    with _cloud_transaction(AccountError) as session:
        set_disabled(session, username, disabled)


@user_app.command("disable")
def user_disable(username: Annotated[str, typer.Argument(help="The account to disable.")]) -> None:
    """Disable an account: signed out everywhere at once, API tokens included."""
    _set_disabled(username, True)
    typer.echo(f"user {username} disabled and signed out")


@user_app.command("enable")
def user_enable(username: Annotated[str, typer.Argument(help="The account to enable again.")]) -> None:
    """Enable a disabled account."""
    _set_disabled(username, False)
    typer.echo(f"user {username} enabled")


@user_app.command("token")
def user_token(username: Annotated[str, typer.Argument(help="The account the token acts as.")]) -> None:
    """Issue a 90-day API token for scripts and FHIR clients (Authorization: Bearer TOKEN). Printed once;
    only its hash is kept."""
    from cloud_expert.accounts import AccountError, issue_api_token

    with _cloud_transaction(AccountError) as session:
        token = issue_api_token(session, username)
    typer.echo(token)


def _dead_letter_stores(settings: Settings, client: str | None) -> list[Path]:
    from cardiomesh.runtime import dead_letter_path

    if client is not None:
        path = dead_letter_path(settings, client)
        if not path.exists():
            raise _fail(f"no dead-letter store for {client!r} (looked for {path})")
        return [path]
    return sorted((Path(settings.state_dir) / "dead-letters").glob("*.db"))


Client = Annotated[str | None, typer.Option("--client", help="One component's MQTT client id (default: all).")]


@dead_app.command("list")
def dead_letters_list(client: Client = None) -> None:
    """Every kept message: its store, id, state (waiting: retried by the component; parked: needs you), tries,
    when it first failed, its topic and the last error."""
    from datetime import UTC, datetime

    from shared.transport import DeadLetterStore

    settings = _setup()
    rows = 0
    for path in _dead_letter_stores(settings, client):
        store = DeadLetterStore(path)
        for letter in store.all():
            rows += 1
            when = datetime.fromtimestamp(letter.first_failed, UTC).strftime("%Y-%m-%d %H:%M:%S")
            typer.echo(f"{path.stem}  #{letter.row_id}  {letter.state:7}  tries {letter.attempts:2}  {when}Z  "
                       f"{letter.topic}\n    {letter.error[:200]}")
        store.close()
    typer.echo(f"{rows} kept message(s) under {Path(settings.state_dir) / 'dead-letters'}")


@dead_app.command("replay")
def dead_letters_replay(
    client: Client = None,
    row_id: Annotated[int | None, typer.Option("--id", help="One message (with --client); default: every parked one.")]
    = None,
) -> None:
    """Make parked messages due again with a fresh budget of tries: the running component (or its next start)
    hands them to their handler. Handlers are idempotent, so a replay never doubles an effect."""
    from shared.transport import DeadLetterStore

    if row_id is not None and client is None:
        raise _fail("--id needs --client: ids are per store")
    settings = _setup()
    released = 0
    for path in _dead_letter_stores(settings, client):
        store = DeadLetterStore(path)
        released += store.release(row_id)
        store.close()
    typer.echo(f"{released} message(s) due for retry")


@drill_app.command("schedule")
def drill_schedule(
    scenario: Annotated[list[str], typer.Option(help="Scenario(s) to run each time, in turn; repeatable.")],
    every: Annotated[str, typer.Option(help="How often: 30m, 6h, 1d …")] = "1d",
    at: Annotated[str | None, typer.Option(help="First time of day (HH:MM, the site's time zone, "
                                           "CARDIOMESH_SITE_TIMEZONE); default: one `every` from now.")] = None,
    once: Annotated[bool, typer.Option("--once", help="Run the drills once now and exit (cron, tests).")] = False,
    verbose: Verbose = False,
) -> None:
    """Run drills on a schedule for this site (e.g. a VT drill daily at 03:00), each recorded in the site's drill
    history (the dashboard's /drills page: requested by "scheduler") with its SLO verdicts. Runs until stopped.

    Example: cardiomesh drill schedule --scenario vt --scenario pause --every 1d --at 03:00
    """
    from cardiomesh.runtime import stop_event_on_signals
    from cardiomesh.schedule import next_due, parse_span, parse_time_of_day
    from cloud_expert.db import make_engine, make_session_factory, upgrade_to_head
    from cloud_expert.drills import run_scheduled
    from shared.messages import DRILL_SCENARIOS, utcnow

    unknown = [s for s in scenario if s not in DRILL_SCENARIOS]
    if unknown:
        raise _fail(f"unknown scenario {unknown[0]!r}: choose from {', '.join(DRILL_SCENARIOS)}")
    try:
        span, first = parse_span(every), parse_time_of_day(at) if at else None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    settings = _setup(verbose, serving=True, cloud=True)
    upgrade_to_head(settings.effective_database_url)
    engine = make_engine(settings.effective_database_url)
    sessions = make_session_factory(engine)
    stop = stop_event_on_signals()
    try:
        while True:
            due = utcnow() if once else next_due(utcnow(), every=span, at=first, zone=settings.site_timezone)
            if not once:
                typer.echo(f"next drills ({', '.join(scenario)}) on {settings.site} at "
                           f"{due.isoformat(timespec='seconds')}")
                if stop.wait(max(0.0, (due - utcnow()).total_seconds())):
                    return
            for name in scenario:
                run_id = run_scheduled(sessions, settings, scenario=name)
                typer.echo(f"drill {name}: run {run_id} recorded (see /drills/{run_id})")
            if once:
                return
    finally:
        engine.dispose()


@drill_app.command("run")
def drill_run(
    scenario: Annotated[str, typer.Option(help="Episode to splice in: vt, vf, af, brady, pause, asystole or tachy "
                                          "(real MIT-BIH / VFDB excerpts where the data is present, synthetic "
                                          "otherwise).")],
    watch_id: Annotated[str | None, typer.Option("--watch", help="Watch device id (default: the first online "
                                                 "watch on the site).")] = None,
    timeout: Annotated[float, typer.Option(min=5, help="Give up after this many seconds.")] = 120.0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the hops and SLO verdicts here.")]
    = None,
    dashboard: Annotated[str | None, typer.Option(
        help="Dashboard base URL: also time when the report can be read there (needs a bearer token in "
             "CARDIOMESH_DASHBOARD_TOKEN, from `cardiomesh user token`).", envvar="CARDIOMESH_DASHBOARD_URL")]
    = None,
    verbose: Verbose = False,
) -> None:
    """Ask a running watch to splice a real episode into its stream, follow it through every hop and
    wait for its DRILL report. Everything it causes carries drill=true and never counts clinically.
    Then judges the hops against their SLOs (detection → edge response ≤ 1 s, edge decision ≤ 10 ms, detection
    → initial triage ≤ 1 s, escalation → report ≤ 60 s, report → on the dashboard ≤ 2 s with --dashboard)
    and exits 3 when one is missed."""
    import os

    from cardiomesh.drill import DrillError, dashboard_probe, run_drill
    from shared.messages import DRILL_SCENARIOS

    if scenario not in DRILL_SCENARIOS:
        raise _fail(f"unknown scenario {scenario!r}: choose one of {', '.join(DRILL_SCENARIOS)}")
    settings = _setup(verbose)
    try:
        visible = None
        if dashboard:
            token = os.environ.get("CARDIOMESH_DASHBOARD_TOKEN", "").strip()
            if not token:
                raise _fail("--dashboard needs CARDIOMESH_DASHBOARD_TOKEN (create one: cardiomesh user token NAME)")
            visible = dashboard_probe(dashboard, token)
        result = run_drill(settings, scenario, watch_id=watch_id, timeout_s=timeout,  # type: ignore[arg-type]
                           echo=typer.echo, visible=visible)
    except DrillError as exc:
        raise _fail(str(exc)) from None
    for url in result.report_urls:
        typer.echo(f"DRILL report: {url}")
    from cardiomesh.slo import judge

    verdicts = judge(result.hops)
    typer.echo("service levels:")
    for verdict in verdicts:
        typer.echo(verdict.line())
    if json_out is not None:
        json_out.write_text(json.dumps({
            "scenario": scenario, "trace_id": result.trace_id, "watch": result.watch_id,
            "hops": [{"name": h.name, "source": h.source, "at": h.at.isoformat(), "detail": h.detail}
                     for h in result.hops],
            "report_urls": result.report_urls,
            "slos": [{"name": v.slo.name, "limit_ms": v.slo.limit_ms, "measured_ms": v.measured_ms,
                      "passed": v.passed} for v in verdicts],
        }, indent=2) + "\n")
    if not all(v.passed for v in verdicts):
        raise typer.Exit(3)


@fl_app.command("run")
def fl_run(
    clients: Annotated[int, typer.Option(min=2, max=22, help="Watches, one per MIT-BIH DS1 patient.")] = 22,
    rounds: Annotated[int, typer.Option(min=1, max=500, help="Federated rounds.")] = 10,
    encrypt: Annotated[bool, typer.Option(help="Packed Paillier encryption of every update (the edge sums "
                                          "blind; only the coordinator decrypts the aggregate).")] = True,
    dp: Annotated[float | None, typer.Option(help="Total differential-privacy budget ε over all rounds "
                                             "(Gaussian, δ = --delta); omit for no DP.", min=0.01)] = None,
    delta: Annotated[float, typer.Option(help="δ of the (ε, δ) guarantee.")] = 1e-5,
    mechanism: Annotated[str, typer.Option(help="gaussian, or laplace (ε per release = --dp / rounds).")]
    = "gaussian",
    edges: Annotated[int, typer.Option(min=1, max=22, help="Edge hubs (sites); clients are spread over them "
                                       "and the cloud adds the edges' sums (hierarchical).")] = 1,
    epochs: Annotated[int, typer.Option(min=1, max=50, help="Local epochs per round.")] = 5,
    batch_size: Annotated[int, typer.Option(min=1, help="Local batch size.")] = 32,
    lr: Annotated[float, typer.Option(help="Local learning rate (Adam).")] = 0.001,
    algorithm: Annotated[str, typer.Option(help="fedavg, or fedprox (with --mu).")] = "fedavg",
    mu: Annotated[float, typer.Option(help="FedProx proximal weight μ.")] = 0.0,
    clip: Annotated[float, typer.Option(help="Clip norm of each client update (DP sensitivity).")] = 1.0,
    max_beats: Annotated[int | None, typer.Option(help="Cap on local training beats per round.")] = None,
    min_clients: Annotated[int | None, typer.Option(min=2, max=22, help="k: fewer updates and nothing is decrypted "
                                                    "(default 75 % of clients).")] = None,
    run_dir: Annotated[Path | None, typer.Option(help="Where rounds.json, rounds.png and global.pt go "
                                                 "(default var/runs/<timestamp>).")] = None,
    mode: Annotated[str, typer.Option(help="sync rounds, or async (FedBuff): each step applies one edge buffer "
                                      "of --buffer staleness-weighted updates; slow devices never block.")]
    = "sync",
    buffer: Annotated[int, typer.Option(min=0, help="async: updates per edge buffer (default clients / 4).")] = 0,
    slow_clients: Annotated[int, typer.Option(min=0, help="async: simulate this many low-compute watches "
                                              "(2 s slower per update).")] = 0,
    average_last: Annotated[int | None, typer.Option(min=1, help="Ship the mean of the last M global models "
                                                     "(damps each round's DP noise; free in privacy). Default: a "
                                                     "third of the rounds; 1 ships the newest alone.")] = None,
    verbose: Verbose = False,
) -> None:
    """Run a real federation over the broker (embedded if none answers): one watch per DS1 patient trains
    locally, updates leave clipped, noised and Paillier-encrypted, edges sum them blind, the coordinator
    decrypts only the sum and publishes a signed global model. Evaluates on DS2 (inter-patient)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from cardiomesh.fl import FederationError, FlOptions, run_federation
    from cloud_expert.coordinator.coordinator import RoundRecord

    if mechanism not in ("gaussian", "laplace") or algorithm not in ("fedavg", "fedprox") or mode not in (
            "sync", "async"):
        raise _fail("--mechanism is gaussian or laplace; --algorithm is fedavg or fedprox; --mode is sync or async")
    settings = _setup(verbose)
    options = FlOptions(clients=clients, rounds=rounds, encrypt=encrypt, dp_epsilon=dp, dp_delta=delta,
                        mechanism=mechanism, edges=edges, epochs=epochs, batch_size=batch_size, lr=lr,
                        algorithm=algorithm, mu=mu, clip_norm=clip, max_beats=max_beats, min_clients=min_clients,
                        run_dir=run_dir, mode=mode, buffer_size=buffer, slow_clients=slow_clients,
                        average_last=average_last)
    with Progress(TextColumn("[bold]round {task.completed}/{task.total}"), BarColumn(),
                  TextColumn("{task.description}"), TimeElapsedColumn(), transient=False) as bar:
        task = bar.add_task("starting", total=rounds)

        def _progress(record: RoundRecord) -> None:
            m = record.metrics or {}
            eps = f" ε={record.epsilon:.2f}" if record.epsilon is not None else ""
            f1 = f" macro-F1 {m['macro_f1']:.3f}" if m.get("macro_f1") is not None else ""
            bar.update(task, advance=1, description=f"{record.status} {record.clients} clients "
                                                    f"{record.seconds:.1f} s{f1}{eps}")

        try:
            result = run_federation(settings, options, progress=_progress)
        except FederationError as exc:
            raise _fail(str(exc)) from None
    typer.echo(json.dumps({"run_dir": str(result.run_dir), "model": str(result.model_path),
                           "epsilon": result.epsilon, "delta": result.delta, "seconds": result.seconds,
                           "averaged_over": result.averaged_over, "final": result.final_metrics}, indent=2))


@fl_app.command("additive")
def fl_additive(
    clients: Annotated[int, typer.Option(min=2, max=22, help="Watches, one per MIT-BIH DS1 patient.")] = 22,
    features: Annotated[str, typer.Option(help="named: the 22 record-relative features; all: those and the 41 "
                                          "beat-window samples (63).")] = "named",
    epochs: Annotated[int, typer.Option(min=1, max=100, help="Passes over the features; each is one release "
                                        "per feature.")] = 30,
    bins: Annotated[int, typer.Option(min=4, max=64, help="Bins per feature, cut at the quantiles of the "
                                      "noised counts.")] = 16,
    epsilon: Annotated[float, typer.Option(min=0.01, help="Sample-level ε of each wearer's beats over the whole "
                                           "training (δ = --delta); --no-dp for none.")] = 8.0,
    dp: Annotated[bool, typer.Option(help="Gaussian noise on every release, calibrated to --epsilon.")] = True,
    delta: Annotated[float, typer.Option(help="δ of the (ε, δ) guarantee.")] = 1e-5,
    v_offset: Annotated[float, typer.Option(help="Added to the V logit of the released model: the operating "
                                            "point, chosen on DS1 by bench/fl_additive.py (−0.6 for the "
                                            "ε = 8 model). Post-processing: no privacy cost.")] = 0.0,
    encrypt: Annotated[bool, typer.Option(help="Packed Paillier on every release (the edges sum blind).")] = True,
    edges: Annotated[int, typer.Option(min=1, max=22, help="Edge hubs (sites) the watches are spread over.")] = 1,
    min_clients: Annotated[int | None, typer.Option(
        min=2, max=22, help="k: a release fewer watches answer is not decrypted; noise shares are sized for k "
                            "(default 75 % of the watches; all of them gives exactly the charged noise).")]
    = None,
    run_dir: Annotated[Path | None, typer.Option(help="Where model.npz and releases.json go "
                                                 "(default var/runs/<timestamp>).")] = None,
    verbose: Verbose = False,
) -> None:
    """Train the federated additive beat model over the broker (embedded if none answers): each DS1 watch sends
    only noised, encrypted sums — its count table once, then its clipped gradient sums one feature at a time —
    edges add them blind, the coordinator decrypts sums of ≥ k watches and publishes each new shape signed.
    Scores the result on DS2; `cardiomesh evaluate --model <run>/model.npz` reads it again."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from cardiomesh.fl import FederationError
    from cardiomesh.fl_additive import FEATURE_SETS, AdditiveOptions, run_additive_federation
    from cloud_expert.coordinator.coordinator import RoundRecord
    from shared.model.evaluation import format_table

    if features not in FEATURE_SETS:
        raise _fail(f"--features is one of {', '.join(FEATURE_SETS)}, not {features!r}")
    settings = _setup(verbose)
    options = AdditiveOptions(clients=clients, features=features, epochs=epochs, bins=bins,
                              epsilon=epsilon if dp else None, delta=delta, v_offset=v_offset,
                              encrypt=encrypt, edges=edges, min_clients=min_clients, run_dir=run_dir)
    with Progress(TextColumn("[bold]release {task.completed}/{task.total}"), BarColumn(),
                  TextColumn("{task.description}"), TimeElapsedColumn(), transient=False) as bar:
        task = bar.add_task("starting", total=1 + epochs * FEATURE_SETS[features])

        def _progress(record: RoundRecord, label: str) -> None:
            bar.update(task, advance=1, description=f"{label}: {record.status}, {record.clients} watches, "
                                                    f"{record.seconds:.2f} s")

        try:
            result = run_additive_federation(settings, options, progress=_progress)
        except FederationError as exc:
            raise _fail(str(exc)) from None
    if result.final_metrics:
        typer.echo(format_table(result.final_metrics))
    typer.echo(json.dumps({"run_dir": str(result.run_dir), "model": str(result.model_path),
                           "releases": result.releases, "skipped": result.skipped, "epsilon": result.epsilon,
                           "delta": result.delta, "seconds": result.seconds,
                           "bytes_per_client": result.bytes_per_client}, indent=2))


@fl_app.command("forest")
def fl_forest(
    clients: Annotated[int, typer.Option(min=2, max=22, help="Watches, one per MIT-BIH DS1 patient.")] = 22,
    trees: Annotated[int, typer.Option(min=1, max=2000, help="Trees; their structure is public, drawn from "
                                       "--seed before any data is seen.")] = 150,
    depth: Annotated[int, typer.Option(min=1, max=12, help="Depth of every tree (2^depth leaves).")] = 8,
    bins: Annotated[int, typer.Option(min=2, max=255, help="Bins per feature, cut at the quantiles of the "
                                      "noised, class-weighted counts.")] = 16,
    epsilon: Annotated[float, typer.Option(min=0.01, help="Sample-level ε of each wearer's beats over the whole "
                                           "training (δ = --delta); --no-dp for none.")] = 8.0,
    dp: Annotated[bool, typer.Option(help="Gaussian noise on both releases, calibrated to --epsilon.")] = True,
    delta: Annotated[float, typer.Option(help="δ of the (ε, δ) guarantee.")] = 1e-5,
    v_offset: Annotated[float, typer.Option(help="Added to the V logit of the released model: the operating "
                                            "point, chosen on DS1 by bench/_dp_forest.py (−0.25) — on the "
                                            "training wearers' beats, a choice ε does not charge.")] = -0.25,
    encrypt: Annotated[bool, typer.Option(help="Packed Paillier on both releases (the edges sum blind).")] = True,
    edges: Annotated[int, typer.Option(min=1, max=22, help="Edge hubs (sites) the watches are spread over.")] = 1,
    min_clients: Annotated[int | None, typer.Option(
        min=2, max=22, help="k: a release fewer watches answer is not decrypted, and ends the run (default: every "
                            "watch).")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Draws the public structure (never the noise: that is always "
                                      "from OS entropy).")] = 0,
    run_dir: Annotated[Path | None, typer.Option(help="Where model.npz and releases.json go "
                                                 "(default var/runs/<timestamp>).")] = None,
    verbose: Verbose = False,
) -> None:
    """Train the DP forest over the broker (embedded if none answers): each DS1 watch sends only two noised,
    encrypted sums — its beat counts on the public grid, then its beats' counts per tree, leaf and class of the
    published random structure — edges add them blind, the coordinator decrypts sums of ≥ k watches and publishes
    the bins, then the leaves, signed. Scores the result on DS2; `cardiomesh evaluate --model <run>/model.npz`
    reads it again."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from cardiomesh.fl import FederationError
    from cardiomesh.fl_forest import ForestOptions, run_forest_federation
    from cloud_expert.coordinator.coordinator import RoundRecord
    from shared.model.evaluation import format_table

    settings = _setup(verbose)
    options = ForestOptions(clients=clients, trees=trees, depth=depth, bins=bins, epsilon=epsilon if dp else None,
                            delta=delta, v_offset=v_offset, encrypt=encrypt, edges=edges, min_clients=min_clients,
                            seed=seed, run_dir=run_dir)
    with Progress(TextColumn("[bold]release {task.completed}/{task.total}"), BarColumn(),
                  TextColumn("{task.description}"), TimeElapsedColumn(), transient=False) as bar:
        task = bar.add_task("counts", total=2)

        def _progress(record: RoundRecord, label: str) -> None:
            bar.update(task, advance=1, description=f"{label}: {record.status}, {record.clients} watches, "
                                                    f"{record.seconds:.2f} s")

        try:
            result = run_forest_federation(settings, options, progress=_progress)
        except FederationError as exc:
            raise _fail(str(exc)) from None
    if result.final_metrics:
        typer.echo(format_table(result.final_metrics))
    typer.echo(json.dumps({"run_dir": str(result.run_dir), "model": str(result.model_path),
                           "releases": result.releases, "epsilon": result.epsilon, "delta": result.delta,
                           "seconds": result.seconds, "bytes_per_client": result.bytes_per_client,
                           "release_clipped": result.release_clipped}, indent=2))


@fl_app.command("trees")
def fl_trees(
    preset: Annotated[str, typer.Option(help="dp: the sample-level-DP trees (8 features, 16 bins, 5 rounds of depth "
                                        "2; ≈ 60 small releases); leafwise: the no-DP model (63 features, 255 bins, "
                                        "≤ 31 leaves, 200 rounds); compact: the same with 63 bins and 100 rounds. "
                                        "Without DP, use --rounds for a few rounds: each release is large.")] = "dp",
    clients: Annotated[int, typer.Option(min=2, max=22, help="Watches, one per MIT-BIH DS1 patient.")] = 22,
    rounds: Annotated[int | None, typer.Option(min=1, max=1000, help="Boosting rounds (default: the preset's: 5, "
                                               "200 or 100).")] = None,
    epsilon: Annotated[float, typer.Option(min=0.01, help="Sample-level ε of each wearer's beats over the whole "
                                           "training (δ = --delta); --no-dp for none.")] = 8.0,
    dp: Annotated[bool, typer.Option(help="Gaussian noise on every release, calibrated to --epsilon (the dp "
                                     "preset only).")] = True,
    delta: Annotated[float, typer.Option(help="δ of the (ε, δ) guarantee.")] = 1e-5,
    encrypt: Annotated[bool, typer.Option(help="Packed Paillier on every release (the edges sum blind).")] = True,
    edges: Annotated[int, typer.Option(min=1, max=22, help="Edge hubs (sites) the watches are spread over.")] = 1,
    min_clients: Annotated[int | None, typer.Option(
        min=2, max=22, help="k: a release fewer watches answer is not decrypted, and ends the run (default: every "
                            "watch).")] = None,
    run_dir: Annotated[Path | None, typer.Option(help="Where model.npz and releases.json go "
                                                 "(default var/runs/<timestamp>).")] = None,
    verbose: Verbose = False,
) -> None:
    """Train the federated beat trees over the broker (embedded if none answers): each DS1 watch sends only noised,
    encrypted sums — its class counts, its beat counts over a public grid, then, split by split, the gradient sums
    of its beats in the open nodes — edges add them blind, the coordinator decrypts sums of ≥ k watches, grows
    the trees and publishes each split signed. Scores the result on DS2; `cardiomesh evaluate --model
    <run>/model.npz` reads it again."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from cardiomesh.fl import FederationError
    from cardiomesh.fl_trees import PRESETS, TreeOptions, run_tree_federation
    from cloud_expert.coordinator.coordinator import RoundRecord
    from shared.model.evaluation import format_table

    if preset not in PRESETS:
        raise _fail(f"--preset is one of {', '.join(PRESETS)}, not {preset!r}")
    if dp and preset != "dp":
        raise _fail(f"the {preset} trees have no DP accounting (leaf-wise growth): add --no-dp")
    settings = _setup(verbose)
    options = TreeOptions(preset=preset, clients=clients, rounds=rounds, epsilon=epsilon if dp else None,
                          delta=delta, encrypt=encrypt, edges=edges, min_clients=min_clients, run_dir=run_dir)
    total_rounds = rounds or PRESETS[preset].config.rounds
    with Progress(TextColumn("[bold]round {task.completed}/{task.total}"), BarColumn(),
                  TextColumn("{task.description}"), TimeElapsedColumn(), transient=False) as bar:
        task = bar.add_task("starting", total=total_rounds)

        def _progress(record: RoundRecord, label: str) -> None:
            done = int(label.split(",")[0].split()[1]) - 1 if label.startswith("round") else 0
            bar.update(task, completed=done, description=f"{label}: {record.status}, {record.clients} watches, "
                                                         f"{record.seconds:.2f} s")

        try:
            result = run_tree_federation(settings, options, progress=_progress)
        except FederationError as exc:
            raise _fail(str(exc)) from None
        bar.update(task, completed=result.rounds)
    if result.final_metrics:
        typer.echo(format_table(result.final_metrics))
    typer.echo(json.dumps({"run_dir": str(result.run_dir), "model": str(result.model_path),
                           "releases": result.releases, "rounds": result.rounds, "epsilon": result.epsilon,
                           "delta": result.delta, "seconds": result.seconds,
                           "bytes_per_client": result.bytes_per_client}, indent=2))


@app.command()
def evaluate(
    model: Annotated[Path, typer.Option(help="Saved beat model: a BeatNet .pt (e.g. bench/results/model.pt), "
                                             "the federated additive .npz (bench/results/model_additive_dp.npz), "
                                             "the federated trees .npz (bench/results/model_trees.npz) or the DP "
                                             "forest .npz (bench/results/model_forest_dp.npz).")],
    records: Annotated[Path, typer.Option(help="Folder of WFDB records (.hea + .dat + .atr), any sampling rate.")],
    only: Annotated[str | None, typer.Option(help="Comma-separated record names, e.g. 100,101 (default: every "
                                             "record with .atr; paced ones left out in an MIT-BIH folder).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON only.")] = False,
    verbose: Verbose = False,
) -> None:
    """Score a beat model on annotated records: beats from the watch's own detector, matched to the
    annotations within 150 ms; per-class Se/+P (N, S, V, F), macro-F1, AUROC (abnormal vs N), the
    confusion matrix (rows true N S V F, columns predicted) and the VEB/SVEB statistics by ANSI/AAMI
    EC57's formulas (fusion and Q beats called V are not false VEBs; extra detections called V are,
    and beats the detector missed are false negatives; no 5-minute learning period)."""
    from shared.model.evaluation import EvaluationError, evaluate_records, format_table
    from shared.model.serialize import ModelFileError

    _setup(verbose)

    def progress(name: str, done: int, total: int) -> None:
        width = 30
        filled = round(width * done / max(1, total))
        typer.echo(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {name:<12}", err=True,
                   nl=done >= total)

    try:
        result = evaluate_records(model, records, only=only.split(",") if only else None, progress=progress)
    except (EvaluationError, ModelFileError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(json.dumps(result) if as_json else format_table(result))


def main() -> None:
    from cardiomesh.runtime import CredentialsError

    try:
        app()
    except CredentialsError as exc:  # raised wherever a command connects: one line, not a traceback
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
