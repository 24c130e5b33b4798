"""A service reads the Kafka CA when it starts and says, as a metric, when the first
certificate it trusts expires: the alert before a renewed CA leaves it behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import REGISTRY

from shared.kafka import broker_security, ca_expiry
from shared.settings import Settings


def ca(name: str, expires: datetime) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(expires - timedelta(days=365))
        .not_valid_after(expires)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def test_the_first_of_the_trusted_cas_to_expire_is_the_metric(tmp_path: Path) -> None:
    soon = datetime(2027, 1, 15, 12, tzinfo=UTC)
    later = datetime(2028, 1, 15, 12, tzinfo=UTC)
    path = tmp_path / "ca.crt"
    # As during Strimzi's renewal: the new CA beside the old one.
    path.write_bytes(ca("cluster-ca v1", later) + ca("cluster-ca v0", soon))
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
