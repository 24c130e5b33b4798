"""Kafka principals and ACLs on the real broker, as the local stack runs it: a partner
may write its own topic and nothing else, and read nothing; a service may write only
what its code produces, its own audit topic included, and no other service's; nobody
logs in without a password, or with another's."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
)
from pydantic import SecretStr

from shared.contracts import Topics
from shared.kafka import client_options
from shared.settings import Settings
from vroegsignaal.provision.kafka_access import ADMIN, partner_principal, service_principal
from vroegsignaal.provision.secrets import Secrets

pytestmark = pytest.mark.integration

SCHOOL, JGZ = "school-de-regenboog", "jgz-voorbeeldrade"


def as_principal(settings: Settings, secrets: Secrets, principal: str) -> Settings:
    # The ACLs are the local broker's (kafka_access.provision): with an external cluster
    # (KAFKA_BOOTSTRAP_SERVERS) these tests cannot hold, and fail saying so, not skip.
    assert settings.kafka_sasl_username == ADMIN, (
        "the ACL tests need the local broker that make test starts; unset "
        "KAFKA_BOOTSTRAP_SERVERS to run them"
    )
    return settings.model_copy(
        update={
            "kafka_sasl_username": principal,
            "kafka_sasl_password_file": secrets.kafka_password_file(principal),
        }
    )


async def write(settings: Settings, topic: str) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_idempotence=True,
        request_timeout_ms=10_000,
        **client_options(settings),
    )
    try:
        await producer.start()
        await producer.send_and_wait(topic, b"{}", key=b"k")
    finally:
        await producer.stop()


async def read(settings: Settings, topic: str, group: str) -> None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group,
        auto_offset_reset="earliest",
        **client_options(settings),
    )
    try:
        await consumer.start()
        await consumer.getmany(timeout_ms=3000)
    finally:
        await consumer.stop()


async def refused(attempt: object) -> None:
    with pytest.raises((TopicAuthorizationFailedError, GroupAuthorizationFailedError)):
        await attempt  # type: ignore[misc]


async def test_a_partner_writes_its_own_topic_and_nothing_else(
    settings: Settings, secrets: Secrets
) -> None:
    topics = Topics(settings.topic_prefix)
    school = as_principal(settings, secrets, partner_principal(SCHOOL))
    await write(school, topics.partner(SCHOOL))  # its own: allowed
    await refused(write(school, topics.partner(JGZ)))
    for internal in (topics.accepted, topics.audit_of("intake"), topics.deadletter):
        await refused(write(school, internal))
    # It reads nothing: not its own topic, not what intake accepted, not the matches.
    group = f"{settings.topic_prefix}vroegsignaal-intake"
    for topic in (topics.partner(SCHOOL), topics.accepted, topics.matches):
        await refused(read(school, topic, group))


@pytest.mark.parametrize(
    ("service", "forbidden"),
    [
        # Notification forging an accepted signal, or writing an audit entry as intake.
        ("notification", ("accepted", "audit:intake", "matches")),
        # Matching writing what intake or audit alone may write.
        ("matching", ("accepted", "audit:audit", "erasures_approved", "alerts")),
        # The internet-facing pseudonymiser writes its own audit events and nothing else.
        ("pseudonymiser", ("accepted", "audit:intake", "deadletter", "audit_requests")),
        ("intake", ("matches", "alerts", "audit:matching", "erasures_approved")),
        ("audit", ("accepted", "matches", "audit:matching")),
    ],
)
async def test_a_service_writes_only_what_its_code_produces(
    settings: Settings, secrets: Secrets, service: str, forbidden: tuple[str, ...]
) -> None:
    topics = Topics(settings.topic_prefix)
    login = as_principal(settings, secrets, service_principal(service))

    def topic(name: str) -> str:
        if name.startswith("audit:"):
            return topics.audit_of(name.removeprefix("audit:"))
        return str(getattr(topics, name))

    await write(login, topics.audit_of(service))  # its own audit topic: allowed
    for name in forbidden:
        await refused(write(login, topic(name)))


async def test_a_service_reads_only_with_its_own_groups(
    settings: Settings, secrets: Secrets
) -> None:
    topics = Topics(settings.topic_prefix)
    notification = as_principal(settings, secrets, service_principal("notification"))
    own = f"{settings.topic_prefix}vroegsignaal-notification"
    await read(notification, topics.matches, own)
    # Another service's group (to steal its partitions) or another topic: refused.
    await refused(read(notification, topics.matches, f"{settings.topic_prefix}vroegsignaal-audit"))
    await refused(read(notification, topics.accepted, own))
    await refused(read(notification, topics.audit_of("intake"), own))


async def test_nobody_logs_in_without_the_password(settings: Settings, secrets: Secrets) -> None:
    topics = Topics(settings.topic_prefix)
    intake = as_principal(settings, secrets, service_principal("intake"))
    stranger = intake.model_copy(
        update={
            "kafka_sasl_password_file": None,
            "kafka_sasl_password": SecretStr(uuid.uuid4().hex * 2),
        }
    )
    with pytest.raises(KafkaError):
        await write(stranger, topics.accepted)
    plain = settings.model_copy(update={"kafka_security_protocol": "PLAINTEXT"})
    with pytest.raises((KafkaConnectionError, KafkaError)):
        await write(plain, topics.accepted)
