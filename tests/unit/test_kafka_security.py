"""How the services log in to Kafka: plain for the local stack, SCRAM-SHA-512 over TLS as
a Strimzi KafkaUser; a setting that cannot work is one clear error naming it."""

from __future__ import annotations

import datetime as dt
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from faststream.security import BaseSecurity, SASLScram512
from prometheus_client import REGISTRY

from shared.kafka import KafkaSecurityError, broker_security, ca_expiry, client_options
from shared.settings import Settings


def ca_pem(name: str = "cluster-ca", expires: dt.datetime | None = None) -> bytes:
    """A self-signed CA certificate (PEM), as Strimzi's cluster CA would be mounted."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    until = expires or dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(until - dt.timedelta(days=365))
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "ca.crt"
    path.write_bytes(ca_pem())
    return path


def test_the_first_of_the_trusted_cas_to_expire_is_a_metric(tmp_path: Path) -> None:
    """A service reads the CA when it starts and says when the first certificate it
    trusts expires: the alert before a renewed CA leaves it behind."""
    soon = dt.datetime(2027, 1, 15, 12, tzinfo=dt.UTC)
    later = dt.datetime(2028, 1, 15, 12, tzinfo=dt.UTC)
    path = tmp_path / "ca.crt"
    # As during Strimzi's renewal: the new CA beside the old one.
    path.write_bytes(ca_pem("cluster-ca v1", later) + ca_pem("cluster-ca v0", soon))
    assert ca_expiry(path) == soon

    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="svc-intake",
        kafka_sasl_password="not-a-real-password",
        kafka_ca_file=path,
    )
    broker_security(settings)
    gauge = REGISTRY.get_sample_value("vroegsignaal_kafka_ca_expiry_timestamp_seconds")
    assert gauge == soon.timestamp()


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
