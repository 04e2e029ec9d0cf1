"""`cardiomesh provision`: a site's CA, every device's and service's credentials, and the broker's policy.

Anyone on the network could publish an alert on a watch's topic with its id, and the edge believed it.
After provisioning, the broker admits only clients holding a certificate from the site's CA (TLS,
`require_certificate`, the certificate's CN is the MQTT username) or, in the simple case, a
username/password from its password file; and its ACL lets each identity publish only its own topics
and read only what it needs:

* a watch publishes its alerts, vitals, strips, presence and FL updates, and reads its own commands
  and the federation's round and signed model;
* a phone reads only its paired watch's alerts and publishes its own findings and presence;
* the site's phone discovery reads the site's presence (to pair phones with watches);
* the edge reads its site and publishes commands, triages, escalations, disclosures, summaries and its FL
  aggregate;
* the cloud ingest reads escalations, disclosures and summaries and publishes reports and labels; the FL
  coordinator reads aggregates and publishes rounds and models; the operator (drills) reads the site and may
  send commands.

Revocation: `cardiomesh provision revoke ID` puts the certificate on the CA's CRL and removes the
identity from the password file and the ACL. Mosquitto rereads the password file and ACL on SIGHUP;
the CRL is read when the listener starts, so restart the broker after revoking a certificate.

Layout written under `--out` (keys are mode 0600; nothing here belongs in git):

    ca.crt ca.key inventory.json
    broker/   mosquitto.conf acl passwd ca.crt crl.pem server.crt server.key health.crt health.key
    clients/  ca.crt  <id>.crt <id>.key <id>.password   (one set per identity)
              <id>.cmdkey (edge, operator: they sign commands)  commands.pub (what every watch trusts)
    hosts/<group>/  the same files, only those of one group of processes (edge, cloud, web, watches,
              phones): what each host or container mounts, so none holds another's keys

Commands are signed (`shared.crypto.commands`): a watch obeys only the edge and operator of its site,
and revoking either takes its key out of `commands.pub` (redistribute it to the watches).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from shared import topics
from shared.crypto.commands import TRUSTED_FILE, public_b64

ROLES = ("watch", "phone", "discovery", "edge", "cloud", "coordinator", "operator", "health")
COMMAND_SIGNERS = ("edge", "operator")  # roles whose commands a watch obeys (shared.crypto.commands)
VALID_DAYS = 825
PBKDF2_ITERATIONS = 101  # Mosquitto 2.0's default for `$7$` (PBKDF2-SHA512) password hashes


class ProvisionError(Exception):
    """Provisioning cannot go on as asked (bad id, existing output, unknown identity)."""


@dataclass(frozen=True, slots=True)
class Identity:
    name: str  # the MQTT username and client id, and the certificate's CN
    role: str
    read: tuple[str, ...]
    write: tuple[str, ...]
    paired_with: str | None = None


@dataclass(slots=True)
class Inventory:
    site: str
    identities: list[Identity]
    serials: dict[str, int] = field(default_factory=dict)
    revoked: dict[str, str] = field(default_factory=dict)  # name → when

    def to_json(self) -> str:
        return json.dumps({"site": self.site, "identities": [asdict(i) for i in self.identities],
                           "serials": self.serials, "revoked": self.revoked}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Inventory:
        raw = json.loads(text)
        ids = [Identity(i["name"], i["role"], tuple(i["read"]), tuple(i["write"]), i.get("paired_with"))
               for i in raw["identities"]]
        return cls(raw["site"], ids, {k: int(v) for k, v in raw["serials"].items()}, dict(raw["revoked"]))


def plan(site: str, devices: int, *, edges: int = 1) -> list[Identity]:
    """Every identity of a site with `devices` watches (watch-i, each paired with phone-i) and `edges` edge hubs
    (edge-1 … edge-N, each owning a share of the patients: CARDIOMESH_EDGE_SHARD), and their topics."""
    topics.presence(site, "x")  # raises ValueError on an unsafe segment
    if not 1 <= devices <= 10_000:
        raise ProvisionError("--devices must be between 1 and 10000")
    if not 1 <= edges <= 64:
        raise ProvisionError("--edges must be between 1 and 64")
    s, any_ = site, topics.ANY
    ids: list[Identity] = []
    for i in range(1, devices + 1):
        watch, phone = f"watch-{i}", f"phone-{i}"
        ids.append(Identity(
            watch, "watch",
            read=(topics.cmd(s, any_, watch), topics.label(s, any_, watch), topics.fl_round(any_),
                  topics.fl_model(any_), topics.fl_model_delta(any_)),
            write=(topics.alert(s, any_, watch), topics.vitals(s, any_, watch), topics.strip(s, any_, watch),
                   topics.presence(s, watch), topics.capabilities(s, watch), topics.fl_update(any_, s, watch)),
            paired_with=phone))
        ids.append(Identity(
            phone, "phone", read=(topics.alert(s, any_, watch),),
            write=(topics.analysis(s, any_, phone), topics.presence(s, phone), topics.capabilities(s, phone)),
            paired_with=watch))
    ids += [
        Identity(f"phones-{s}", "discovery", read=(topics.presence(s, any_),), write=()),
        *(Identity(f"{s}-{edge_id}", "edge",
                   read=(topics.everything(s), topics.fl_update(any_, s, any_), topics.fl_round(any_)),
                   write=(topics.cmd(s, any_, any_), topics.triage(s, any_, edge_id),
                          topics.escalation(s, any_, edge_id), topics.disclosure(s, any_, edge_id),
                          topics.summary(s, any_, edge_id), topics.presence(s, edge_id),
                          topics.capabilities(s, edge_id), topics.fl_aggregate(any_, s, edge_id)))
          for edge_id in (f"edge-{k}" for k in range(1, edges + 1))),
        Identity("cloud-ingest", "cloud", read=(topics.escalation(any_, any_, any_),
                                                topics.disclosure(any_, any_, any_), topics.summary(any_, any_, any_)),
                 write=(topics.report(any_, any_, "cloud"), topics.label(any_, any_, any_))),
        Identity("fl-coordinator", "coordinator", read=(f"{topics.ROOT}/fl/+/aggregate/#",),
                 write=(topics.fl_round(any_), topics.fl_model(any_), topics.fl_model_delta(any_))),
        Identity(f"operator-{s}", "operator", read=(topics.everything(s),), write=(topics.cmd(s, any_, any_),)),
        Identity("health", "health", read=("$SYS/broker/version",), write=()),  # the broker's own health check
    ]
    return ids


# -- password file ---------------------------------------------------------------------------------
def mosquitto_hash(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """A Mosquitto 2.x password-file hash (`$7$`: PBKDF2-SHA512), as `mosquitto_passwd` writes it."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def acl_text(identities: list[Identity]) -> str:
    lines = ["# CardioMesh broker ACL (cardiomesh provision): each identity's topics; anything else is denied."]
    for ident in identities:
        lines += ["", f"user {ident.name}"]
        lines += [f"topic read {t}" for t in ident.read]
        lines += [f"topic write {t}" for t in ident.write]
    return "\n".join(lines) + "\n"


def mosquitto_conf(broker_dir: str, *, tls_port: int, password_port: int | None, persistence_dir: str | None,
                   run_as: str | None = None) -> str:
    """One TLS listener (client certificate required, its CN the username) and optionally a password one.
    `run_as`: the user a broker started as root keeps (it must read the 0600 keys and password file)."""
    d = broker_dir.rstrip("/")
    lines = [
        "# Mosquitto 2.x for a provisioned CardioMesh site (cardiomesh provision). No anonymous clients.",
        *([f"user {run_as}"] if run_as else []),
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {d}/passwd",
        f"acl_file {d}/acl",
        "set_tcp_nodelay true",
        # twice the components' own limit (CARDIOMESH_MAX_PAYLOAD_BYTES, 512 KiB): a client sending a bigger
        # packet is disconnected by the broker, so a 5 MB flood never reaches the edge
        "max_packet_size 1048576",
    ]
    if persistence_dir:
        # save after every change, not every 30 s: a broker killed -9 loses at most what arrived since the last
        # message (queued QoS 1 alerts for an offline edge survive); costs a write per message
        lines += ["persistence true", f"persistence_location {persistence_dir.rstrip('/')}/",
                  "autosave_on_changes true", "autosave_interval 1"]
    lines += [
        "", "# TLS: only holders of a certificate from the site's CA, not on its CRL",
        f"listener {tls_port}", f"cafile {d}/ca.crt", f"certfile {d}/server.crt", f"keyfile {d}/server.key",
        f"crlfile {d}/crl.pem", "require_certificate true", "use_identity_as_username true",
        "tls_version tlsv1.2",
    ]
    if password_port is not None:
        lines += ["", "# the simple case: username and password from the password file; plain TCP, so localhost only",
                  f"listener {password_port} 127.0.0.1"]
    return "\n".join(lines) + "\n"


# -- X.509 -----------------------------------------------------------------------------------------
def _write(path: Path, data: bytes, *, secret: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if secret:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn: str, site: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CardioMesh"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, site),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, cn: str, site: str, *,
           server_names: tuple[str, ...] = ()) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(cn, site)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=VALID_DAYS))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    if server_names:
        alt: list[x509.GeneralName] = []
        for name in server_names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False).add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _crl(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, revoked: dict[str, int]) -> bytes:
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject).last_update(now)
               .next_update(now + dt.timedelta(days=VALID_DAYS)))
    for serial in sorted(revoked.values()):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build())
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


#: Which identities each kind of host runs (compose mounts hosts/<group>/ into that service only).
HOST_GROUPS: dict[str, tuple[str, ...]] = {
    "edge": ("edge",), "cloud": ("cloud", "coordinator"), "web": ("operator",), "watches": ("watch",),
    "phones": ("phone", "discovery"),
}


def _write_host_bundles(out: Path, identities: list[Identity]) -> None:
    clients = out / "clients"
    for group, roles in HOST_GROUPS.items():
        folder = out / "hosts" / group
        for shared_file in ("ca.crt", "commands.pub"):
            _write(folder / shared_file, (clients / shared_file).read_bytes())
        for ident in identities:
            if ident.role not in roles:
                continue
            for ext in (".crt", ".key", ".password", ".cmdkey"):
                source = clients / f"{ident.name}{ext}"
                if source.exists():
                    _write(folder / source.name, source.read_bytes(), secret=ext != ".crt")


@dataclass(frozen=True, slots=True)
class Provisioned:
    out: Path
    identities: list[Identity]

    @property
    def broker(self) -> Path:
        return self.out / "broker"

    @property
    def clients(self) -> Path:
        return self.out / "clients"


def provision(out: Path, site: str, devices: int, *, tls_port: int = 8883, password_port: int | None = None,
              server_names: tuple[str, ...] = ("localhost", "127.0.0.1", "mosquitto"),
              broker_path: str | None = None, persistence_dir: str | None = None,
              run_as: str | None = None, edges: int = 1) -> Provisioned:
    """Write a site's CA, credentials and broker configuration under `out` (which must not hold a CA yet)."""
    if (out / "ca.key").exists():
        raise ProvisionError(f"{out} already holds a CA: provision into a new folder, or revoke/add there")
    identities = plan(site, devices, edges=edges)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    ca_name = _name(f"CardioMesh {site} CA", site)
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=VALID_DAYS * 2))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                            crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
               .sign(ca_key, hashes.SHA256()))
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    _write(out / "ca.key", _key_pem(ca_key), secret=True)
    _write(out / "ca.crt", ca_pem)
    broker, clients = out / "broker", out / "clients"
    server_key, server_cert = _issue(ca_key, ca_cert, "mosquitto", site, server_names=server_names)
    _write(broker / "server.key", _key_pem(server_key), secret=True)
    _write(broker / "server.crt", server_cert.public_bytes(serialization.Encoding.PEM))
    _write(broker / "ca.crt", ca_pem)
    _write(clients / "ca.crt", ca_pem)
    inventory = Inventory(site, identities)
    passwd: list[str] = []
    for ident in identities:
        key, cert = _issue(ca_key, ca_cert, ident.name, site)
        inventory.serials[ident.name] = cert.serial_number
        _write(clients / f"{ident.name}.key", _key_pem(key), secret=True)
        _write(clients / f"{ident.name}.crt", cert.public_bytes(serialization.Encoding.PEM))
        password = secrets.token_urlsafe(24)
        _write(clients / f"{ident.name}.password", password.encode(), secret=True)
        passwd.append(f"{ident.name}:{mosquitto_hash(password)}")
    trusted: dict[str, str] = {}
    for ident in identities:
        if ident.role in COMMAND_SIGNERS:
            cmd_key = Ed25519PrivateKey.generate()
            _write(clients / f"{ident.name}.cmdkey", cmd_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
                secret=True)
            trusted[ident.name] = public_b64(cmd_key)
    _write(clients / TRUSTED_FILE, json.dumps(trusted, indent=2).encode())
    for ext in (".crt", ".key"):  # the health check runs inside the broker's container
        _write(broker / f"health{ext}", (clients / f"health{ext}").read_bytes(), secret=ext == ".key")
    _write(broker / "passwd", ("\n".join(passwd) + "\n").encode(), secret=True)
    _write(broker / "acl", acl_text(identities).encode())
    _write(broker / "crl.pem", _crl(ca_key, ca_cert, {}))
    _write(broker / "mosquitto.conf", mosquitto_conf(broker_path or str(broker.resolve()), tls_port=tls_port,
                                                     password_port=password_port,
                                                     persistence_dir=persistence_dir, run_as=run_as).encode())
    _write(out / "inventory.json", inventory.to_json().encode())
    _write_host_bundles(out, identities)
    return Provisioned(out, identities)


def revoke(out: Path, name: str) -> Identity:
    """Revoke one identity: its certificate onto the CRL, out of the password file and the ACL."""
    inventory = Inventory.from_json((out / "inventory.json").read_text())
    ident = next((i for i in inventory.identities if i.name == name), None)
    if ident is None:
        raise ProvisionError(f"no identity {name!r} in {out / 'inventory.json'}")
    ca_key = serialization.load_pem_private_key((out / "ca.key").read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ProvisionError("ca.key is not an EC key written by cardiomesh provision")
    ca_cert = x509.load_pem_x509_certificate((out / "ca.crt").read_bytes())
    inventory.revoked[name] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    _write(out / "broker" / "crl.pem",
           _crl(ca_key, ca_cert, {n: inventory.serials[n] for n in inventory.revoked if n in inventory.serials}))
    passwd = out / "broker" / "passwd"
    kept = [line for line in passwd.read_text().splitlines() if line and line.split(":", 1)[0] != name]
    _write(passwd, ("\n".join(kept) + "\n").encode(), secret=True)
    trusted_file = out / "clients" / TRUSTED_FILE
    if trusted_file.exists():
        trusted = {k: v for k, v in json.loads(trusted_file.read_text()).items() if k != name}
        _write(trusted_file, json.dumps(trusted, indent=2).encode())
    live = [i for i in inventory.identities if i.name not in inventory.revoked]
    _write(out / "broker" / "acl", acl_text(live).encode())
    for stale in (out / "hosts").glob(f"*/{name}.*"):
        stale.unlink()
    if (out / "hosts").exists():
        _write_host_bundles(out, live)
    _write(out / "inventory.json", inventory.to_json().encode())
    return ident
