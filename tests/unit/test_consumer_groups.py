"""Which consumer group reads which topics is written down in three places besides the
handlers: the ACLs of each service's Kafka principal (vroegsignaal/provision/
kafka_access.py, which the local broker applies and deploy-check compares with the
KafkaUsers) and the backlog the chaos and soak runs wait for (vroegsignaal/dev/
harness.py). Each service's subscriptions, as its handlers register them, must be what
those say."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast
from unittest.mock import MagicMock

import pytest
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry

from services.audit import handlers as audit
from services.matching import handlers as matching
from services.notification import handlers as notification
from shared.contracts import Topics
from shared.policy import Policy
from shared.service import ServiceRuntime
from shared.settings import Settings
from vroegsignaal.dev.harness import consumed
from vroegsignaal.provision.kafka_access import principals, service_principal

PREFIX = "t1."
POLICY = Policy.parse(Path("config/policy.yaml").read_text())
REGISTER = {
    "matching": lambda runtime: matching.register(runtime, POLICY),
    "notification": lambda runtime: notification.register(runtime, MagicMock()),
    "audit": audit.register,
}


def subscriptions(service: str) -> dict[str, set[str]]:
    runtime = ServiceRuntime(
        name=service,
        settings=Settings(topic_prefix=PREFIX),
        broker=KafkaBroker(),
        topics=Topics(PREFIX),
        registry=CollectorRegistry(),
        service_dir=Path("."),
        audit=cast(Any, None),
        dead_letters=cast(Any, None),
    )
    REGISTER[service](runtime)
    return {group: set(read) for group, read in runtime.subscriptions().items()}


@pytest.mark.parametrize("service", sorted(REGISTER))
def test_each_group_reads_what_its_acls_and_the_backlog_say(service: str) -> None:
    topics = Topics(PREFIX)
    groups = subscriptions(service)
    waited_for = {
        group: set(read)
        for group, read in consumed(topics, []).items()
        if group.startswith(f"{PREFIX}vroegsignaal-{service}")
    }
    assert groups == waited_for
    granted = {
        grant.name
        for grant in principals(topics, [])[service_principal(service)]
        if grant.resource == "group"
    }
    assert set(groups) == granted
