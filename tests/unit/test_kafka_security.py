"""How the services log in to Kafka: plain for the local stack, SCRAM-SHA-512 over TLS as
a Strimzi KafkaUser; a setting that cannot work is one clear error naming it."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from faststream.security import BaseSecurity, SASLScram512
from prometheus_client import REGISTRY

from shared.kafka import KafkaSecurityError, broker_security, client_options, kafka_trust
from shared.service import build_service
from shared.settings import Settings


@dataclass(frozen=True)
class Ca:
    """A CA as Strimzi's cluster CA: its certificate (what services trust) and its key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, tmp_path: Path, host: str = "localhost") -> ssl.SSLContext:
        """A broker's TLS server context with a certificate for `host` signed here."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_file, key_file = tmp_path / f"{id(cert)}.crt", tmp_path / f"{id(cert)}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(cert_file, key_file)
        return server


CA_KEY_USAGE = dict.fromkeys(
    ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
     "encipher_only", "decipher_only"),
    False,
) | {"digital_signature": True, "key_cert_sign": True, "crl_sign": True}  # fmt: skip


def make_ca(name: str = "cluster-ca", expires: dt.datetime | None = None) -> Ca:
    """A self-signed CA certificate, as Strimzi's cluster CA would be mounted."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    until = expires or dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(min(until, dt.datetime.now(dt.UTC)) - dt.timedelta(days=365))
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(**CA_KEY_USAGE),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Ca(cert, key)


def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "ca.crt"
    path.write_bytes(make_ca().pem)
    return path


async def handshake(client: ssl.SSLContext, server: ssl.SSLContext) -> None:
    """A TLS connection to a broker-like server on loopback, verified as `localhost`."""

    async def answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    listening = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server)
    port = listening.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname="localhost"
        )
        writer.close()
    finally:
        listening.close()
        await listening.wait_closed()


async def test_a_renewed_cluster_ca_is_trusted_beside_the_old_one_without_a_restart(
    tmp_path: Path,
) -> None:
    """Strimzi replaces its CA in the mounted Secret, then rolls the brokers one by one:
    the running service re-reads the file and verifies brokers under either CA."""
    old = make_ca("cluster-ca v0", dt.datetime(2027, 1, 15, 12, tzinfo=dt.UTC))
    new = make_ca("cluster-ca v1", dt.datetime(2028, 1, 15, 12, tzinfo=dt.UTC))
    stranger = make_ca("someone else's CA")
    path = tmp_path / "ca.crt"
    path.write_bytes(old.pem)
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="svc-intake",
        kafka_sasl_password="not-a-real-password",
        kafka_ca_file=path,
    )
    security = broker_security(settings)
    assert isinstance(security, SASLScram512) and security.ssl_context is not None
    trusted = security.ssl_context
    # Every Kafka client of the process shares the one context that is refreshed.
    assert client_options(settings)["ssl_context"] is trusted
    gauge = "vroegsignaal_kafka_ca_expiry_timestamp_seconds"
    assert REGISTRY.get_sample_value(gauge) == old.cert.not_valid_after_utc.timestamp()
    trust = kafka_trust(path)

    await handshake(trusted, old.issue(tmp_path))
    with pytest.raises(ssl.SSLCertVerificationError):
        await handshake(trusted, new.issue(tmp_path))

    path.write_bytes(new.pem)  # the kubelet swaps the mounted file
    added = await asyncio.to_thread(trust.refresh)
    assert [c.subject for c in added] == [new.cert.subject]
    assert await asyncio.to_thread(trust.refresh) == []  # read again: nothing new

    await handshake(trusted, new.issue(tmp_path))  # a broker rolled to the new CA
    await handshake(trusted, old.issue(tmp_path))  # one not rolled yet
    with pytest.raises(ssl.SSLCertVerificationError):
        await handshake(trusted, stranger.issue(tmp_path))
    # The alert asks whether any trusted CA outlives the next 21 days: the new one does.
    assert REGISTRY.get_sample_value(gauge) == new.cert.not_valid_after_utc.timestamp()


def test_a_ca_file_without_a_certificate_names_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "empty.crt"
    path.write_text("not a certificate\n")
    settings = Settings(kafka_security_protocol="SSL", kafka_ca_file=path)
    with pytest.raises(KafkaSecurityError, match="VS_KAFKA_CA_FILE"):
        broker_security(settings)


def test_the_local_stack_speaks_plaintext() -> None:
    settings = Settings()
    assert broker_security(settings) is None
    assert client_options(settings) == {}


def test_a_kafka_user_logs_in_with_scram_over_tls(tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("s3cret-from-strimzi\n")
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="svc-matching",
        kafka_sasl_password_file=password,
        kafka_ca_file=ca_file(tmp_path),
    )
    security = broker_security(settings)
    assert isinstance(security, SASLScram512)
    assert (security.username, security.password) == ("svc-matching", "s3cret-from-strimzi")
    assert security.use_ssl
    assert security.ssl_context is not None
    assert security.ssl_context.verify_mode is ssl.CERT_REQUIRED
    assert len(security.ssl_context.get_ca_certs()) == 1  # the cluster CA, and only it
    options = client_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "svc-matching",
        "s3cret-from-strimzi",
    )


def test_tls_alone_verifies_the_brokers(tmp_path: Path) -> None:
    settings = Settings(kafka_security_protocol="SSL", kafka_ca_file=ca_file(tmp_path))
    security = broker_security(settings)
    assert type(security) is BaseSecurity and security.use_ssl
    assert client_options(settings)["security_protocol"] == "SSL"


def test_scram_without_credentials_names_what_to_set() -> None:
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="svc-audit")
    with pytest.raises(KafkaSecurityError, match="VS_KAFKA_SASL_PASSWORD_FILE"):
        broker_security(settings)


def test_an_unreadable_ca_file_names_the_setting(tmp_path: Path) -> None:
    settings = Settings(kafka_security_protocol="SSL", kafka_ca_file=tmp_path / "missing.crt")
    with pytest.raises(KafkaSecurityError, match="VS_KAFKA_CA_FILE"):
        client_options(settings)


def test_a_service_with_an_impossible_login_stops_with_one_message(tmp_path: Path) -> None:
    kek = tmp_path / "kek.yaml"
    kek.write_text("current: k1\nkeys: {k1: " + "ab" * 32 + "}\n")
    env = {
        "PATH": "/usr/bin:/bin",
        "VS_KEK_FILE": str(kek),
        "VS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "VS_KAFKA_SASL_USERNAME": "svc-matching",
    }
    done = subprocess.run(
        [sys.executable, "-m", "vroegsignaal", "serve", "matching"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("error: VS_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs")


def test_a_service_on_tls_reads_its_ca_file_again_while_it_runs(tmp_path: Path) -> None:
    tls = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="svc-intake",
        kafka_sasl_password="not-a-real-password",
        kafka_ca_file=ca_file(tmp_path),
    )
    _, runtime = build_service("intake", tmp_path, tls, lambda _runtime: [])
    _, local = build_service("intake", tmp_path, Settings(), lambda _runtime: [])

    assert "re-reading the Kafka CA file" in [what for what, _ in runtime.background]
    assert "re-reading the Kafka CA file" not in [what for what, _ in local.background]
