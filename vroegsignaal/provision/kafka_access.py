"""Who may do what on Kafka: one Kafka principal per process and per partner, with exactly
the topics and consumer groups its code uses. The one definition of it: the local broker
gets these credentials and ACLs (`provision`), and `make deploy-check` holds the
manifests' KafkaUsers to the same table.

A service reads the topics it subscribes to with its own consumer groups and writes the
topics its outbox and dead letters go to, and its own audit topic only (so the audit
service knows which service wrote an entry). A partner writes its own topic and nothing
else. The local stack's `admin` is the broker's operator (topics, users, ACLs), never a
service's login.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)

from shared.contracts import Topics

ADMIN_USER = "admin"  # the local broker's operator (super user), its SCRAM login
ADMIN = ADMIN_USER

SERVICES = ("pseudonymiser", "intake", "matching", "notification", "audit")
Operation = Literal["Read", "Write", "Describe"]


def service_principal(service: str) -> str:
    return f"svc-{service}"


def partner_principal(partner_id: str) -> str:
    return f"partner-{partner_id}"


def new_password() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, order=True)
class Grant:
    """One ACL: allow (or deny) `operations` on a topic or consumer group."""

    resource: Literal["topic", "group"]
    name: str
    pattern: Literal["literal", "prefix"]
    operations: tuple[Operation, ...]
    deny: bool = False


def _reads(*topics: str) -> list[Grant]:
    return [Grant("topic", t, "literal", ("Read", "Describe")) for t in topics]


def _writes(*topics: str) -> list[Grant]:
    return [Grant("topic", t, "literal", ("Write", "Describe")) for t in topics]


def _groups(topics: Topics, service: str, *suffixes: str) -> list[Grant]:
    base = topics.name(f"vroegsignaal-{service}")
    return [Grant("group", base + s, "literal", ("Read",)) for s in ("", *suffixes)]


def service_grants(service: str, topics: Topics) -> list[Grant]:
    """What `service`'s code consumes and produces, and nothing else."""
    own_audit = topics.audit_of(service)
    if service == "pseudonymiser":
        return _writes(own_audit)
    if service == "intake":
        return [
            # Every partner topic (partners come and go), not its own output.
            Grant("topic", topics.name(Topics.PARTNER_PREFIX), "prefix", ("Read", "Describe")),
            Grant("topic", topics.accepted, "literal", ("Read",), deny=True),
            *_groups(topics, service),
            *_writes(topics.accepted, topics.wijk_themes, topics.audit_requests, own_audit),
            *_writes(topics.deadletter),
        ]
    if service == "matching":
        return [
            *_reads(topics.accepted, topics.wijk_themes, topics.erasures_approved),
            *_groups(topics, service, "-trends", "-erasures"),
            *_writes(topics.matches, topics.match_lifecycle, topics.trends),
            *_writes(topics.audit_requests, own_audit, topics.deadletter),
        ]
    if service == "notification":
        return [
            *_reads(topics.matches, topics.match_lifecycle, topics.trends),
            *_groups(topics, service, "-trends"),
            *_writes(topics.alerts, own_audit, topics.deadletter),
        ]
    if service == "audit":
        return [
            # Every service's audit topic, and the access and erasure requests.
            Grant("topic", topics.name(Topics.AUDIT_PREFIX), "prefix", ("Read", "Describe")),
            *_reads(topics.audit_requests),
            *_groups(topics, service, "-requests"),
            # The tree heads it signs; `audit verify` in its pod reads them back.
            Grant("topic", topics.tree_heads, "literal", ("Read", "Write", "Describe")),
            *_writes(topics.erasures_approved, own_audit, topics.deadletter),
        ]
    raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")


def partner_grants(partner_id: str, topics: Topics) -> list[Grant]:
    """A partner writes its own topic: nothing else, and reads nothing."""
    return _writes(topics.partner(partner_id))


def principals(topics: Topics, partner_ids: Iterable[str]) -> dict[str, list[Grant]]:
    """Every principal of a stack with its grants (each also gets IdempotentWrite)."""
    table = {service_principal(s): service_grants(s, topics) for s in SERVICES}
    table |= {partner_principal(p): partner_grants(p, topics) for p in partner_ids}
    return table


def _bindings(principal: str, grants: Iterable[Grant]) -> list[AclBinding]:
    user = f"User:{principal}"
    bindings = [
        AclBinding(
            ResourceType.BROKER,
            "kafka-cluster",
            ResourcePatternType.LITERAL,
            user,
            "*",
            AclOperation.IDEMPOTENT_WRITE,
            AclPermissionType.ALLOW,
        )
    ]
    for g in grants:
        for op in g.operations:
            bindings.append(
                AclBinding(
                    ResourceType.TOPIC if g.resource == "topic" else ResourceType.GROUP,
                    g.name,
                    ResourcePatternType.PREFIXED
                    if g.pattern == "prefix"
                    else ResourcePatternType.LITERAL,
                    user,
                    "*",
                    AclOperation[op.upper()],
                    AclPermissionType.DENY if g.deny else AclPermissionType.ALLOW,
                )
            )
    return bindings


def admin_config(bootstrap: str, password: str) -> dict[str, str | int | float | bool]:
    """librdkafka's login of the local broker's operator."""
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": ADMIN,
        "sasl.password": password,
    }


class KafkaAccessError(RuntimeError):
    """The broker refused a user or an ACL; the message names which."""


def provision(
    bootstrap: str,
    admin_password: str,
    passwords: Mapping[str, str],
    table: Mapping[str, list[Grant]],
    *,
    users: bool = True,
    timeout: float = 30.0,
) -> None:
    """Create (or update) the SCRAM credential of every principal in `passwords` (unless
    `users` is false) and add the ACLs of `table`, as the broker's operator. Idempotent:
    an ACL that exists is kept, a password is set again."""
    missing = sorted(set(table) - set(passwords))
    if missing:
        raise KafkaAccessError(
            f"no password for {', '.join(missing)}: run 'vroegsignaal secrets init' again "
            "(it adds what is missing)"
        )
    admin = AdminClient(admin_config(bootstrap, admin_password))
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(
            name,
            ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
            passwords[name].encode(),
        )
        for name in sorted(passwords)
        if users and name != ADMIN  # the admin's was made with the storage
    ]
    if upserts:
        for name, future in admin.alter_user_scram_credentials(upserts).items():
            try:
                future.result(timeout)
            except Exception as exc:  # librdkafka's KafkaException, per user
                raise KafkaAccessError(
                    f"the broker refused the credential of {name}: {exc}"
                ) from exc
    bindings = [b for name, grants in sorted(table.items()) for b in _bindings(name, grants)]
    if not bindings:
        return
    for binding, future in admin.create_acls(bindings, request_timeout=timeout).items():
        try:
            future.result(timeout)
        except Exception as exc:
            raise KafkaAccessError(f"the broker refused the ACL {binding}: {exc}") from exc
