"""Kafka: topics, users and ACLs as the code needs them, logins over SCRAM and TLS."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared.contracts import Topics
from vroegsignaal.deploycheck.manifests import (
    Manifest,
    container_env,
    containers,
    ident,
    pod_labels,
    selects,
    workloads,
)
from vroegsignaal.deploycheck.model import (
    BOOTSTRAP_ENV,
    KAFKA_USER_PREFIX,
    PARTNERS_TEMPLATE,
    Finding,
)
from vroegsignaal.provision import kafka_access


def topic_name(doc: Manifest) -> str:
    return str(doc["spec"].get("topicName") or doc["metadata"]["name"])


def partner_ids(docs: Sequence[Manifest]) -> set[str]:
    return {
        d["metadata"]["name"].removeprefix("partner-")
        for d in docs
        if d.get("kind") == "KafkaUser" and d["metadata"]["name"].startswith("partner-")
    }


def _acl_covers(acl: Manifest, topic: str) -> bool:
    resource = acl.get("resource") or {}
    if resource.get("type") != "topic":
        return False
    name = str(resource.get("name", ""))
    if resource.get("patternType", "literal") == "prefix":
        return topic.startswith(name)
    return name in (topic, "*")


def acls_of(user: Manifest) -> list[Manifest]:
    return list(((user.get("spec") or {}).get("authorization") or {}).get("acls") or [])


def _allows(acl: Manifest, *operations: str) -> bool:
    return acl.get("type", "allow") == "allow" and bool(
        {*operations, "All"} & set(acl.get("operations") or [])
    )


def check_kafka(
    docs: Sequence[Manifest],
    label: str = "",
    expected_partners: set[str] | None = None,
    stand_in: str | None = None,
) -> list[Finding]:
    """A KafkaTopic for every topic (shared/contracts.py) and every partner; each partner's
    KafkaUser may write its own topic and nothing else, and nobody else may write it but
    `stand_in`: the dev simulator's user, which plays every partner and may write their
    topics (all of them) and nothing else."""
    findings = []
    where = label or "manifests"
    topics = {topic_name(d): d for d in docs if d.get("kind") == "KafkaTopic"}
    users = [d for d in docs if d.get("kind") == "KafkaUser"]
    partners = partner_ids(docs)
    if expected_partners is not None and partners != expected_partners:
        findings.append(
            Finding(
                "kafka",
                where,
                f"partner KafkaUsers {sorted(partners)} are not the "
                f"partners of {PARTNERS_TEMPLATE.name} {sorted(expected_partners)}",
            )
        )
    names = Topics()
    wanted = [*names.internal(), *(names.partner(p) for p in sorted(partners))]
    for name in wanted:
        topic = topics.get(name)
        if topic is None:
            findings.append(Finding("kafka", where, f"no KafkaTopic for {name}"))
            continue
        config = topic["spec"].get("config") or {}
        min_isr = int(config.get("min.insync.replicas", 1))
        if "min.insync.replicas" not in config or "retention.ms" not in config:
            findings.append(
                Finding("kafka", f"{where} {name}", "set retention.ms and min.insync.replicas")
            )
        if int(topic["spec"].get("replicas", 1)) < min_isr:
            findings.append(
                Finding("kafka", f"{where} {name}", "fewer replicas than min.insync.replicas")
            )
    for partner_topic in (t for t in topics if names.partner_id_of(t) is not None):
        owner = f"partner-{names.partner_id_of(partner_topic)}"
        writers = {
            u["metadata"]["name"]
            for u in users
            for acl in acls_of(u)
            if _allows(acl, "Write") and _acl_covers(acl, partner_topic)
        }
        if writers - {owner, stand_in}:
            findings.append(
                Finding(
                    "kafka",
                    f"{where} {partner_topic}",
                    f"{sorted(writers - {owner, stand_in})} may write it: only {owner}",
                )
            )
        if stand_in is not None and stand_in not in writers:
            findings.append(
                Finding(
                    "kafka",
                    f"{where} {partner_topic}",
                    f"{stand_in} may not write it: the simulator plays every partner",
                )
            )
        if owner not in writers:
            findings.append(
                Finding("kafka", f"{where} {partner_topic}", f"{owner} may not write it")
            )
    for user in (u for u in users if u["metadata"]["name"] == stand_in):
        partner_topics = {t for t in topics if names.partner_id_of(t) is not None}
        for acl in acls_of(user):
            resource = acl.get("resource") or {}
            ops = set(acl.get("operations") or [])
            plays_partner = (
                resource.get("type") == "topic"
                and resource.get("patternType", "literal") == "literal"
                and resource.get("name") in partner_topics
                and ops <= {"Write", "Describe"}
            )
            if not plays_partner and not (
                resource.get("type") == "cluster" and ops == {"IdempotentWrite"}
            ):
                findings.append(
                    Finding(
                        "kafka",
                        f"{where} {ident(user)}",
                        f"ACL {resource} {acl.get('operations')}: the simulator may only "
                        "write the partners' topics",
                    )
                )
    for user in users:
        pid = user["metadata"]["name"].removeprefix("partner-")
        if not user["metadata"]["name"].startswith("partner-"):
            continue
        own = names.partner(pid)
        if (user["spec"].get("authentication") or {}).get("type") != "scram-sha-512":
            findings.append(Finding("kafka", f"{where} {ident(user)}", "must use scram-sha-512"))
        for acl in acls_of(user):
            resource = acl.get("resource") or {}
            exact = (
                resource.get("type") == "topic"
                and resource.get("name") == own
                and resource.get("patternType", "literal") == "literal"
            )
            extra = set(acl.get("operations") or []) - {"Write", "Describe"}
            if not exact or extra:
                findings.append(
                    Finding(
                        "kafka",
                        f"{where} {ident(user)}",
                        f"ACL {resource} {acl.get('operations')}: a partner may only write {own}",
                    )
                )
    return findings


def kafka_clusters(docs: Sequence[Manifest]) -> dict[str, Manifest]:
    return {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Kafka"}


def listeners_of(kafka: Manifest) -> list[Manifest]:
    return list(((kafka.get("spec") or {}).get("kafka") or {}).get("listeners") or [])


def _scram_over_tls(listener: Manifest) -> bool:
    return (
        listener.get("tls") is True
        and (listener.get("authentication") or {}).get("type") == "scram-sha-512"
    )


def describe_listener(listener: Manifest) -> str:
    auth = (listener.get("authentication") or {}).get("type") or "NO authentication"
    tls = "TLS" if listener.get("tls") else "no TLS"
    return f"{listener.get('name')} {listener.get('port')} ({listener.get('type')}, {tls}, {auth})"


def bootstrap_listener(address: str, kafkas: Mapping[str, Manifest]) -> tuple[str, Manifest] | str:
    """The cluster and listener behind `<cluster>-kafka-bootstrap[.<namespace>...]:<port>`,
    or why there is none."""
    host, _, port = address.strip().rpartition(":")
    service = host.split(".")[0]
    for name, kafka in kafkas.items():
        if service != f"{name}-kafka-bootstrap":
            continue
        for listener in listeners_of(kafka):
            if str(listener.get("port")) == port:
                return name, listener
        return f"{address}: Kafka/{name} has no listener on port {port or '(none)'}"
    known = ", ".join(f"{n}-kafka-bootstrap" for n in kafkas) or "no Kafka"
    return f"{address} is not a Strimzi bootstrap service here ({known})"


def by_sub_path(container: Manifest, path: str) -> bool:
    """Whether the file at `path` is a subPath mount (frozen at the container's start)."""
    return any(
        mount.get("subPath") and str(mount.get("mountPath", "")).rstrip("/") == path
        for mount in container.get("volumeMounts") or []
    )


def mounted_secret(spec: Manifest, container: Manifest, path: str) -> tuple[str, str] | None:
    """(Secret, key) whose value the container reads as the file `path`, through a
    secret or projected volume; None when no Secret puts a file there (or it is unclear
    which one does)."""
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        root = str(mount.get("mountPath", "")).rstrip("/")
        if mount.get("subPath"):
            if path != root:
                continue
            relative = str(mount["subPath"])
        elif path.startswith(root + "/"):
            relative = path[len(root) + 1 :]
        else:
            continue
        volume = volumes.get(mount.get("name")) or {}
        if "secret" in volume:
            sources = [(volume["secret"].get("secretName"), volume["secret"].get("items"))]
        else:
            sources = [
                (source["secret"].get("name"), source["secret"].get("items"))
                for source in (volume.get("projected") or {}).get("sources") or []
                if "secret" in source
            ]
        whole = []
        for secret, items in sources:
            if items is None:
                whole.append((str(secret), relative))
            for item in items or []:
                if item.get("path") == relative:
                    return str(secret), str(item.get("key"))
        # Without `items` every key of the Secret is a file: unambiguous only alone.
        if len(whole) == 1 and len(sources) == 1 and "/" not in relative:
            return whole[0]
    return None


def _reaches(docs: Sequence[Manifest], labels: dict[str, str], cluster: str, port: object) -> bool:
    """Some egress NetworkPolicy on these pod labels lets them reach `cluster`'s brokers
    on `port`."""
    brokers = {"strimzi.io/cluster": cluster, "strimzi.io/broker-role": "true"}
    for policy in (d for d in docs if d.get("kind") == "NetworkPolicy"):
        spec = policy["spec"]
        if "Egress" not in (spec.get("policyTypes") or []):
            continue
        if not selects(spec.get("podSelector"), labels):
            continue
        for rule in spec.get("egress") or []:
            peers = rule.get("to") or [{}]
            to_brokers = any(
                "ipBlock" not in peer
                and "namespaceSelector" not in peer
                and selects(peer.get("podSelector") or {}, brokers)
                for peer in peers
            )
            ports = [str(p.get("port")) for p in rule.get("ports") or []]
            if to_brokers and (not ports or str(port) in ports):
                return True
    return False


def _admits(listener: Manifest, labels: dict[str, str]) -> bool:
    """The listener's networkPolicyPeers (none: everyone) let pods with these labels in."""
    peers = listener.get("networkPolicyPeers")
    if not peers:
        return True
    return any(
        "namespaceSelector" not in peer
        and "ipBlock" not in peer
        and selects(peer.get("podSelector") or {}, labels)
        for peer in peers
    )


@dataclass(frozen=True)
class KafkaLogin:
    workload: str
    user: str | None
    bootstrap: str | None


def kafka_logins(
    docs: Sequence[Manifest], label: str = ""
) -> tuple[list[KafkaLogin], list[Finding]]:
    """Every Kafka client here (a container that sees KAFKA_BOOTSTRAP_SERVERS) and what is
    wrong with its login: it must log in as its own KafkaUser svc-<workload> with
    SCRAM-SHA-512 over TLS, on a listener that authenticates, with the password file from
    the Secret Strimzi makes for that user and the cluster CA, and be let through to the
    brokers by the network policies."""
    kafkas = kafka_clusters(docs)
    users = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "KafkaUser"}
    logins, findings = [], []
    for doc, spec in workloads(docs):
        name = doc["metadata"]["name"]
        labels = pod_labels(doc)
        for container in containers(spec):
            env = container_env(docs, container)
            if BOOTSTRAP_ENV not in env:
                continue
            where = f"{label} {ident(doc)} container {container.get('name')}".strip()
            problems: list[str] = []
            own = f"{KAFKA_USER_PREFIX}{name}"
            protocol = env.get("VS_KAFKA_SECURITY_PROTOCOL")
            if protocol != "SASL_SSL":
                problems.append(
                    f"VS_KAFKA_SECURITY_PROTOCOL is {protocol or 'unset (PLAINTEXT)'}: must "
                    "be SASL_SSL, SCRAM-SHA-512 over TLS as its KafkaUser"
                )
            bootstrap = env.get(BOOTSTRAP_ENV)
            cluster = next(iter(kafkas), "")
            if not bootstrap:
                problems.append(f"{BOOTSTRAP_ENV} is not an address written here")
            for address in bootstrap.split(",") if bootstrap else []:
                found = bootstrap_listener(address, kafkas)
                if isinstance(found, str):
                    problems.append(f"{BOOTSTRAP_ENV} {found}")
                    continue
                cluster, listener = found
                if not _scram_over_tls(listener) or listener.get("type") != "internal":
                    problems.append(
                        f"{BOOTSTRAP_ENV} {address} is the listener {describe_listener(listener)}: "
                        "the services use an internal one with tls and scram-sha-512"
                    )
                if not _reaches(docs, labels, cluster, listener.get("port")):
                    problems.append(
                        f"no NetworkPolicy lets it reach the Kafka brokers on port "
                        f"{listener.get('port')}"
                    )
                if not _admits(listener, labels):
                    problems.append(
                        f"the listener {listener.get('name')}'s networkPolicyPeers do not "
                        "select its pods"
                    )
            user = env.get("VS_KAFKA_SASL_USERNAME")
            if user != own:
                problems.append(
                    f"logs in as {user or 'nobody (VS_KAFKA_SASL_USERNAME unset)'}: each "
                    f"workload logs in as its own KafkaUser, {own}"
                )
            kafka_user = users.get(user or "")
            if user and kafka_user is None:
                problems.append(f"there is no KafkaUser {user}")
            elif kafka_user is not None:
                meta = kafka_user["metadata"]
                auth = ((kafka_user.get("spec") or {}).get("authentication") or {}).get("type")
                if auth != "scram-sha-512":
                    problems.append(f"KafkaUser {user} authenticates by {auth}: not scram-sha-512")
                if (meta.get("labels") or {}).get("strimzi.io/cluster") != cluster:
                    problems.append(f"KafkaUser {user} is not a user of Kafka/{cluster}")
            for variable, wanted, what in (
                ("VS_KAFKA_SASL_PASSWORD_FILE", (user or own, "password"), "its password"),
                ("VS_KAFKA_CA_FILE", (f"{cluster}-cluster-ca-cert", "ca.crt"), "the cluster CA"),
            ):
                path = env.get(variable)
                got = mounted_secret(spec, container, path) if path else None
                if got != wanted:
                    source = f"key {got[1]} of Secret {got[0]}" if got else "no Secret"
                    problems.append(
                        f"{variable} {path or '(unset)'} must be {what}, key {wanted[1]} of "
                        f"the Secret {wanted[0]} mounted as a file; there is {source}"
                    )
                elif variable == "VS_KAFKA_CA_FILE" and path and by_sub_path(container, path):
                    problems.append(
                        f"{variable} {path} is mounted by subPath: the kubelet never updates "
                        "such a file, so a renewed cluster CA would not reach the running "
                        "service (which reads the file again each minute); mount the directory"
                    )
            findings += [Finding("kafka-login", where, problem) for problem in problems]
            logins.append(KafkaLogin(name, user, bootstrap))
    return logins, findings


def describe_kafka(docs: Sequence[Manifest]) -> list[str]:
    """The listeners and who logs in as whom, for the output: a reviewer sees at a glance
    that every listener authenticates."""
    lines = []
    for name, kafka in kafka_clusters(docs).items():
        listeners = listeners_of(kafka)
        open_ = [x for x in listeners if not (x.get("authentication") or {}).get("type")]
        lines.append(
            f"Kafka/{name} listeners: {'; '.join(map(describe_listener, listeners))}; "
            f"without authentication: {', '.join(map(describe_listener, open_)) or 'none'}"
        )
    logins, _ = kafka_logins(docs)
    if logins:
        lines.append(
            "Kafka logins: "
            + ", ".join(f"{x.workload} as {x.user} at {x.bootstrap}" for x in logins)
        )
    return lines


def check_kafka_login(docs: Sequence[Manifest], label: str = "") -> list[Finding]:
    """No Kafka listener without authentication and no super user ANONYMOUS; every Kafka
    client logs in as its own KafkaUser (kafka_logins); every service user is used by its
    workload and holds only what a service needs (Read, Write, Describe on topics that
    exist, Read on its own consumer groups, IdempotentWrite), with no Create: topics are
    KafkaTopics; KEDA reads the lag over a listener that authenticates."""
    where = label or "manifests"
    kafkas = kafka_clusters(docs)
    findings = []
    for name, kafka in kafkas.items():
        at = f"{where} Kafka/{name}"
        for listener in listeners_of(kafka):
            if not (listener.get("authentication") or {}).get("type"):
                findings.append(
                    Finding(
                        "kafka-login",
                        at,
                        f"listener {describe_listener(listener)}: whoever reaches it is "
                        "ANONYMOUS; every client logs in as its KafkaUser",
                    )
                )
        authorization = ((kafka.get("spec") or {}).get("kafka") or {}).get("authorization")
        if (authorization or {}).get("type") != "simple":
            findings.append(Finding("kafka-login", at, "authorization is not simple: no ACLs"))
        supers = [str(u) for u in (authorization or {}).get("superUsers") or []]
        if any(u.removeprefix("User:") == "ANONYMOUS" for u in supers):
            findings.append(
                Finding(
                    "kafka-login",
                    at,
                    "superUsers has ANONYMOUS: a client that does not log in would pass every ACL",
                )
            )
    logins, found = kafka_logins(docs, label)
    findings += found
    used = {login.user for login in logins}
    topics = {topic_name(d) for d in docs if d.get("kind") == "KafkaTopic"}
    for user in (d for d in docs if d.get("kind") == "KafkaUser"):
        name = user["metadata"]["name"]
        if not name.startswith(KAFKA_USER_PREFIX):
            continue
        at = f"{where} {ident(user)}"
        if name not in used:
            findings.append(
                Finding("kafka-login", at, "no workload logs in as it: a password nobody needs")
            )
        workload = name.removeprefix(KAFKA_USER_PREFIX)
        for acl in acls_of(user):
            problem = _service_acl_problem(acl, workload, topics)
            if problem:
                findings.append(Finding("kafka-login", at, problem))
        if workload in kafka_access.SERVICES:
            findings += _acls_as_the_code_needs(user, workload, at)
    for scaled in (d for d in docs if d.get("kind") == "ScaledObject"):
        for trigger in scaled["spec"].get("triggers") or []:
            if trigger.get("type") != "kafka":
                continue
            meta = trigger.get("metadata") or {}
            for address in str(meta.get("bootstrapServers", "")).split(","):
                found_listener = bootstrap_listener(address, kafkas)
                if isinstance(found_listener, str):
                    problem = found_listener
                elif not _scram_over_tls(found_listener[1]):
                    problem = f"{address} is the listener {describe_listener(found_listener[1])}"
                elif (meta.get("sasl"), meta.get("tls")) != ("scram_sha512", "enable"):
                    problem = "set sasl: scram_sha512 and tls: enable"
                else:
                    continue
                findings.append(
                    Finding("kafka-login", f"{where} {ident(scaled)}", f"KEDA's lag: {problem}")
                )
    return findings


AclEntry = tuple[str, str, str, str, bool]


def _acl_entries(acl: Manifest) -> set[AclEntry]:
    """One KafkaUser ACL as (resource, name, pattern, operation, deny) entries."""
    resource = acl.get("resource") or {}
    return {
        (
            str(resource.get("type")),
            str(resource.get("name", "kafka-cluster")),
            str(resource.get("patternType", "literal")),
            str(op),
            acl.get("type", "allow") == "deny",
        )
        for op in acl.get("operations") or []
    }


def _acls_as_the_code_needs(user: Manifest, workload: str, at: str) -> list[Finding]:
    """A service's KafkaUser grants exactly what the local broker grants it: the table in
    vroegsignaal/provision/kafka_access.py, which follows the service's code."""
    wanted: set[AclEntry] = {("cluster", "kafka-cluster", "literal", "IdempotentWrite", False)}
    for grant in kafka_access.service_grants(workload, Topics()):
        wanted |= {
            (grant.resource, grant.name, grant.pattern, op, grant.deny) for op in grant.operations
        }
    found: set[AclEntry] = set()
    for acl in acls_of(user):
        found |= _acl_entries(acl)
    findings = [
        Finding("kafka-login", at, f"missing the ACL {entry} that {workload}'s code needs")
        for entry in sorted(wanted - found)
    ]
    findings += [
        Finding(
            "kafka-login",
            at,
            f"the ACL {entry} is more than {workload}'s code needs "
            "(vroegsignaal/provision/kafka_access.py)",
        )
        for entry in sorted(found - wanted)
    ]
    return findings


def _service_acl_problem(acl: Manifest, workload: str, topics: set[str]) -> str | None:
    if acl.get("type", "allow") == "deny":
        return None
    resource = acl.get("resource") or {}
    kind, name = resource.get("type"), str(resource.get("name", ""))
    ops = set(acl.get("operations") or [])
    pattern = resource.get("patternType", "literal")
    group = f"vroegsignaal-{workload}"
    if kind == "topic" and ops <= {"Read", "Write", "Describe"}:
        exists = name in topics if pattern == "literal" else any(t.startswith(name) for t in topics)
        return None if exists else f"ACL on topic {name} ({pattern}): no KafkaTopic is that"
    if kind == "group" and ops <= {"Read", "Describe"} and pattern == "literal":
        if name == group or name.startswith(f"{group}-"):
            return None
        return f"ACL on group {name}: {workload}'s consumer groups are {group}[-<suffix>]"
    if kind == "cluster" and ops == {"IdempotentWrite"}:
        return None
    return (
        f"ACL {resource} {sorted(ops)}: a service gets Read/Write/Describe on topics, Read "
        "on its own consumer groups and IdempotentWrite, nothing else (no Create: topics "
        "are KafkaTopics)"
    )
