"""End to end through the real services and the real broker, from a partner's CSV with
BSNs to alerts: pseudonymised, signed, re-keyed, matched, alerted, audited, one trace per
signal, bad input dead-lettered, a re-run changing nothing, and no BSN anywhere."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import random
import subprocess
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from services.audit.check import check
from services.audit.merkle import leaf_hash, verify_inclusion
from services.intake.app import load_partners
from shared.auth import Role
from shared.contracts import AuditEvent, DeadLetter, Topics, scoped_id
from shared.deadletter import DeadLetterOpener
from shared.envelope import SEALED_TO_HEADER, IntakeKeyring, public_key_of, seal
from shared.kafka import create_broker
from shared.policy import load_policy
from shared.settings import Settings
from tests.conftest import auth, eventually, keys_fetchval
from tests.e2e.conftest import partner_config
from tests.kafka_tools import group_lag, login, read_all, read_topic
from vroegsignaal.dev.harness import consumed
from vroegsignaal.dev.stack.postgres import _bin_dir
from vroegsignaal.partner.bsn import synthetic_bsns
from vroegsignaal.partner.producer import PartnerProducer, Summary
from vroegsignaal.partner.pseudonymise import Pseudonymiser, bsn_input, household_input
from vroegsignaal.provision.secrets import Secrets

pytestmark = pytest.mark.e2e

SCHOOL, JGZ, GP = "school-de-regenboog", "jgz-voorbeeldrade", "huisartsen-centrum"
BORN = date(2016, 5, 4)
HOUSEHOLD = "HH-42-Voorbeeldrade"
FIELDS = [
    "child_bsn",
    "parent_bsns",
    "household_id",
    "date_of_birth",
    "age_limit_month",
    "category",
    "wijk",
    "registered_at",
    "worker_id",
    "worker_name",
    "worker_email",
    "reference",
]


def export(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in FIELDS})
    return path


def row(child: str, parents: str, worker: str, category: str) -> dict[str, str]:
    return {
        "child_bsn": child,
        "parent_bsns": parents,
        "household_id": HOUSEHOLD,
        "date_of_birth": BORN.isoformat(),
        "category": category,
        "wijk": "WK099903",
        # Yesterday: partner events older than the policy's staleness limit are refused.
        "registered_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(timespec="seconds"),
        "worker_id": worker,
        "worker_name": f"Medewerker {worker}",
        "worker_email": f"{worker}@voorbeeldrade.example",
    }


async def get_json(url: str, headers: dict[str, str] | None = None) -> Any:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(url, headers=headers)
        response.raise_for_status()
        return response.json()


async def settled(settings: Settings) -> bool:
    """Every consumer group caught up and every outbox empty.

    Work moves only downstream (partner topics -> intake -> matching -> notification ->
    audit) and is always visible somewhere: as lag until its consumer commits, then as an
    outbox row until the relay has published it. Checked stage by stage in that order,
    work that moves on while we look is seen at a later stage, never missed."""
    topics = Topics(settings.topic_prefix)
    groups_read = consumed(topics, [topics.partner(p.partner_id) for p in load_partners(settings)])
    # (service, its consumer groups and what each consumes), in the order work flows.
    stages = [
        (
            service,
            {
                group: read
                for group, read in groups_read.items()
                if group.removeprefix(topics.name("vroegsignaal-")).split("-")[0] == service
            },
        )
        for service in ("pseudonymiser", "intake", "matching", "notification", "audit")
    ]
    conn = await asyncpg.connect(settings.database_url)
    try:
        for service, groups in stages:
            for name, read in groups.items():
                if await group_lag(settings, name, read):
                    return False
            if await conn.fetchval(f'SELECT count(*) FROM "{service}".outbox'):
                return False
            # Intake counts the observations it holds, and publishes the counts that
            # grew by at least k, on a schedule.
            held = (
                "SELECT (SELECT count(*) FROM intake.pending_observations)"
                " + (SELECT count(*) FROM intake.theme_cells WHERE children - published >= $1)"
            )
            if service == "intake" and await conn.fetchval(
                held, load_policy(settings.policy_file).aggregates.k
            ):
                return False
    finally:
        await conn.close()
    return True


async def audit_rows(settings: Settings) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await conn.fetch("SELECT * FROM audit.entries ORDER BY seq")
    finally:
        await conn.close()


# The JGZ and GP signals are on different topics and subjects, so matching may take them
# in either order; each order is forced once, and every assertion must hold in both.
@pytest.mark.parametrize("first", [JGZ, GP], ids=["jgz-first", "gp-first"])
async def test_a_partner_export_becomes_a_match_and_alerts_without_any_bsn_leaving(
    settings: Settings, secrets: Secrets, services: dict[str, str], tmp_path: Path, first: str
) -> None:
    topics = Topics(settings.topic_prefix)
    child, other_child, mother, father = synthetic_bsns(4, random.Random())
    bsns = {child, other_child, mother, father}
    school_csv = export(
        tmp_path / "school.csv",
        [
            row(child, f"{mother};{father}", "juf-anouk", "schoolverzuim"),
            {**row("123456789", "", "juf-anouk", "pesten")},  # fails the elfproef
        ],
    )
    jgz_csv = export(tmp_path / "jgz.csv", [row(child, mother, "jgz-fleur", "opvoedvragen")])
    gp_csv = export(tmp_path / "gp.csv", [row(other_child, father, "dokter-bos", "armoede")])

    tracer = TracerProvider().get_tracer("partner")
    broker, _ = create_broker(
        settings,
        client_id="partners",
        tracer_provider=TracerProvider(),
        registry=CollectorRegistry(),
    )
    await broker.start()
    raw = AIOKafkaProducer(**login(settings), acks="all")
    await raw.start()
    school_key = Ed25519PrivateKey.from_private_bytes(
        bytes.fromhex(partner_config(secrets, settings, SCHOOL).signing_key)
    )
    try:
        async with httpx.AsyncClient(timeout=10) as http:

            def producer(partner: str) -> PartnerProducer:
                return PartnerProducer(
                    partner_config(secrets, settings, partner), broker, topics, http
                )

            async def send(partner: str, path: Path) -> Summary:
                return await producer(partner).send_file(path, today=settings_today())

            # Bad input first, on the partition the school's signal will take: it must
            # not block that signal.
            key = (
                await Pseudonymiser(
                    partner_config(secrets, settings, SCHOOL).pseudonymiser, http
                ).pseudonyms([bsn_input(child)])
            )[0].encode()
            malformed = b'{"schema_version": 2, "partner_id": "school-de-regenboog", "subj'
            unsealed = b'{"schema_version": 2, "partner_id": "school-de-regenboog"}'
            oversized = b'{"schema_version": 2, "padding": "' + b"x" * 200_000 + b'"}'
            intake_keys = partner_config(secrets, settings, SCHOOL).intake_keys
            to_intake = public_key_of(intake_keys.public_keys[intake_keys.current])
            # Signed and sealed by the partner, yet hostile to a parser: each is refused
            # as cheaply as a valid message is read, and holds up nothing behind it.
            hostile = [
                b"[" * 3000 + b"]" * 3000,
                b'{"schema_version": 2, "subject": ' + b"9" * 4000 + b"}",
                b'{"schema_version": 2, "organisation": "\\ud800"}',
            ]
            for value, signed, sealed in (
                (b"unsigned", False, False),
                (seal(to_intake, intake_keys.current, malformed), True, True),
                (unsealed, True, False),
                (oversized, True, False),
                *((seal(to_intake, intake_keys.current, h), True, True) for h in hostile),
            ):
                headers = [("vs-key-id", b"school-de-regenboog-1")] if signed else []
                if signed:
                    headers.append(("vs-signature", base64.b64encode(school_key.sign(value))))
                if sealed:
                    headers.append((SEALED_TO_HEADER, intake_keys.current.encode()))
                await raw.send_and_wait(topics.partner(SCHOOL), value, key=key, headers=headers)

            school = await send(SCHOOL, school_csv)
            assert (school.sent, school.rejected) == (1, 1)
            assert school.rejects[0].line == 3
            assert "child_bsn is geen geldig BSN" in school.rejects[0].reason

            async def registered(n: int) -> bool:
                summary = await get_json(f"{services['matching']}/matches/summary")
                return bool(summary["registrations"] == n)

            await eventually(lambda: registered(1), timeout=60)
            # The second organisation, inside a trace of its own: the person match is
            # raised in it.
            for partner in (first, GP if first == JGZ else JGZ):
                if partner == JGZ:
                    with tracer.start_as_current_span("jgz-export") as span:
                        jgz_trace_id = format(span.get_span_context().trace_id, "032x")
                        await send(JGZ, jgz_csv)
                else:
                    await send(GP, gp_csv)
                if partner == first:
                    await eventually(lambda: registered(2), timeout=60)

            async def person_and_family_match() -> bool:
                matching = await get_json(f"{services['matching']}/matches/summary")
                alerts = await get_json(f"{services['notification']}/alerts/summary")
                return (
                    matching["registrations"] == 3
                    and matching["open_matches"] == 2
                    and matching["open_family_matches"] == 1
                    and alerts["open_matches"] == 2
                )

            # The child's two organisations raise a person match; its sibling (a shared
            # father) with the GP's registration makes a family match of all three.
            await eventually(person_and_family_match, timeout=60)
            # The counts can be reached before the last join is told: wait for all of it.
            await eventually(lambda: settled(settings), timeout=60)

            # The JGZ and GP signals may reach matching in either order: the family match
            # is then raised with all three parties, or raised with two and joined by the
            # third. What holds in both: two matches, their parties, and each worker told
            # of every other party, nothing about why, nothing about whom.
            inbox_api = f"{services['notification']}/api/alerts"
            everyone = {"juf-anouk", "jgz-fleur", "dokter-bos"}
            parties_of_kind = {
                "person": {"juf-anouk", "jgz-fleur"},
                "family": everyone,
            }
            match_ids: dict[str, str] = {}
            coordinators = set()
            for me in sorted(everyone):
                headers = auth(settings, me, Role.WORKER)
                inbox = await get_json(inbox_api, headers=headers)
                assert "schoolverzuim" not in json.dumps(inbox)
                told: dict[str, set[str]] = {}
                for alert in inbox["alerts"]:
                    # One match of each kind, the same for everyone.
                    kind_match = match_ids.setdefault(alert["kind"], alert["match_id"])
                    assert kind_match == alert["match_id"]
                    told.setdefault(alert["kind"], set()).update(
                        c["worker_id"] for c in alert["contacts"]
                    )
                    coordinators.add(alert["coordinator"]["worker_id"])
                mine = {k for k, parties in parties_of_kind.items() if me in parties}
                assert set(told) == mine
                for kind in mine:
                    assert told[kind] == parties_of_kind[kind] - {me}
                    seen = await get_json(
                        f"{services['notification']}/api/matches/{match_ids[kind]}",
                        headers=headers,
                    )
                    assert {p["worker_id"] for p in seen["parties"]} == parties_of_kind[kind]
            # One coordinator for the family, a JGT worker of the wijk's team.
            assert len(coordinators) == 1 and coordinators <= {"jgt-noord-1", "jgt-noord-2"}
            async with httpx.AsyncClient(timeout=5) as client:
                no_token = await client.get(inbox_api)
            assert no_token.status_code == 401

            # Bad input is dead-lettered with its reason, in the order it came.
            letters = [
                DeadLetter.model_validate_json(r.value)
                for r in await read_topic(
                    settings,
                    topics.deadletter,
                    until=lambda rs: len(rs) >= 7,
                )
            ]
            assert [d.reason_code for d in letters] == [
                "unsigned",
                "malformed-json",
                "unsealed",
                "oversized",
                "too-deep",
                "number-too-long",
                "invalid-unicode",
            ]
            # The originals are kept only sealed: the operator's private key opens them.
            opener = DeadLetterOpener.load(secrets.deadletter_private_key)
            assert {d.partner_id for d in letters} == {SCHOOL}
            opened = opener.open(letters[1])
            # What the partner sealed, as intake opened it (padded with spaces).
            assert opened is not None and opened.value.rstrip(b" ") == malformed
            kept = letters[1].model_dump_json().encode()
            assert malformed[20:60] not in kept and base64.b64encode(malformed)[:40] not in kept
            assert letters[3].original_truncated
            assert letters[3].original_size == len(oversized)

            # Every step is audited; the jgz signal is one trace through every hop.
            await eventually(lambda: settled(settings), timeout=60)
            rows = await audit_rows(settings)
            # Intake counted each child in its wijk x theme week, and kept the counts: cells
            # of three children are under k, so nothing of them travelled on, not even
            # later and in a batch.
            conn = await asyncpg.connect(settings.database_url)
            try:
                assert await conn.fetchval("SELECT sum(children) FROM intake.theme_cells") == 3
                # Counted apart from the signals: no row with a theme was written in the
                # transaction that admitted a signal (its row versions would tell which).
                for table in ("theme_cells", "theme_tokens"):
                    assert not await conn.fetchval(
                        f"SELECT count(*) FROM intake.{table} t"
                        " JOIN intake.received_signals r ON t.xmin = r.xmin"
                    )
            finally:
                await conn.close()
            assert not await read_all(settings, topics.wijk_themes)
            # No key in clear in intake's tables: the trend window's key is in the key
            # store, wrapped by the KEK, and intake only notes that the window has one.
            conn = await asyncpg.connect(settings.database_url)
            try:
                windows = [
                    r["window_id"] for r in await conn.fetch("SELECT * FROM intake.trend_windows")
                ]
                assert windows and all(
                    set(r.keys()) == {"window_id", "created_at"}
                    for r in await conn.fetch("SELECT * FROM intake.trend_windows")
                )
                kept = await keys_fetchval(
                    settings,
                    "SELECT count(*) FROM keystore.data_keys WHERE subject = ANY($1)",
                    [f"trend-window:{w}" for w in windows],
                )
                assert kept == len(windows)
            finally:
                await conn.close()
            # Forced to come first, the GP's signal raises the family match with two
            # parties and the JGZ's joins it; otherwise the JGZ's is counted in the raise.
            joined = ("matching", "update", "match") in {
                (r["source_system"], r["action"], r["object_type"]) for r in rows
            }
            assert joined == (first == GP)
            steps = {(r["source_system"], r["action"], r["object_type"]) for r in rows}
            assert {
                ("pseudonymiser", "create", "oprf-evaluation"),
                ("intake", "reject", "signal"),
                ("intake", "create", "signal"),
                ("matching", "create", "registration"),
                ("matching", "create", "match"),
                ("notification", "notify", "alert"),
                ("notification", "read", "alert-list"),
            } <= steps
            # Two matches created, whether or not one was joined later; notification
            # assigns each a coordinator once.
            created = {
                r["object_id"]
                for r in rows
                if (r["source_system"], r["action"], r["object_type"])
                == ("matching", "create", "match")
            }
            assert created == set(match_ids.values())
            assigned = [
                r["object_id"]
                for r in rows
                if (r["action"], r["object_type"]) == ("assign", "match")
            ]
            assert sorted(assigned) == sorted(created)
            # The partner's trace ends at its topic. Intake handles the JGZ signal in a
            # trace of its own, which goes through every hop (the person match it raised is
            # alerted in it); no span of ours is in the partner's trace or links to it, and
            # the span that consumed the partner's message names no partition or offset.
            trace_file = tmp_path / "traces.jsonl"
            person_alerts = [
                record
                for record in await read_all(settings, topics.alerts)
                if json.loads(record.value)["kind"] == "person"
            ]
            assert person_alerts
            (intake_trace,) = {
                dict(r.headers)["traceparent"].decode().split("-")[1] for r in person_alerts
            }

            async def intake_trace_through_every_hop() -> list[dict[str, Any]] | None:
                if not trace_file.exists():
                    return None
                spans = [json.loads(line) for line in trace_file.read_text().splitlines()]
                hops = {s["service"] for s in spans if s["trace_id"] == intake_trace}
                wanted = {"intake", "matching", "notification", "audit"}
                return spans if wanted <= hops else None

            spans = await eventually(intake_trace_through_every_hop, timeout=30)
            assert intake_trace != jgz_trace_id
            assert not [s for s in spans if s["trace_id"] == jgz_trace_id or s["links"]]
            partner_topics = {topics.partner(p) for p in (SCHOOL, JGZ, GP)}
            consumed = [
                s
                for s in spans
                if s["attributes"].get("messaging.destination_publish.name") in partner_topics
            ]
            assert consumed and all(
                set(s["attributes"]) <= {"messaging.system", "messaging.destination_publish.name",
                                         "messaging.operation"}
                for s in consumed
            )  # fmt: skip
            in_trace = {r["source_system"] for r in rows if r["trace_id"] == intake_trace}
            assert {"intake", "matching", "notification"} <= in_trace
            assert not [r for r in rows if r["trace_id"] == jgz_trace_id]
            internal = await topic_bytes(settings, only=topics.internal())
            assert jgz_trace_id.encode() not in internal

            # Sending the same files again changes nothing downstream.
            entries_before = len(rows)
            alerts_before = (await get_json(f"{services['notification']}/alerts/summary"))["alerts"]
            for partner, path in ((SCHOOL, school_csv), (JGZ, jgz_csv), (GP, gp_csv)):
                await send(partner, path)
            await eventually(lambda: settled(settings), timeout=60)
            summary = await get_json(f"{services['matching']}/matches/summary")
            assert (summary["registrations"], summary["open_matches"]) == (3, 2)
            alerts_after = (await get_json(f"{services['notification']}/alerts/summary"))["alerts"]
            assert alerts_after == alerts_before
            # Only the pseudonymiser's evaluations of the re-run are new in the log.
            new = (await audit_rows(settings))[entries_before:]
            assert {r["object_type"] for r in new} == {"oprf-evaluation"}
    finally:
        await raw.stop()
        await broker.stop()

    # The audit log is provably intact: a signed head covers every entry, published on
    # the topic too, and an entry's inclusion proof from the HTTP API verifies offline.
    async def head_covers_all() -> dict[str, Any] | None:
        head: dict[str, Any] = await get_json(f"{services['audit']}/audit/v1/tree-head")
        entries = len(await audit_rows(settings))
        return head if head["size"] == entries else None

    head = await eventually(head_covers_all, timeout=30)
    public = await get_json(f"{services['audit']}/audit/v1/public-key")
    assert await check(settings, bytes.fromhex(public["public_key"]), with_topic=True) == []
    proof = await get_json(f"{services['audit']}/audit/v1/inclusion?index=3&size={head['size']}")
    # The proof carries hashes only; the entry is read by the privacy officer's search.
    fg = auth(settings, "fg-voorbeeldrade")
    since = "2000-01-01T00:00:00%2B00:00"
    found = await get_json(
        f"{services['audit']}/audit/v1/search?from={since}&after=2&limit=1", headers=fg
    )
    (entry,) = found["entries"]
    assert entry["leaf_index"] == 3
    canonical = AuditEvent.model_validate(entry["event"]).to_bytes()
    assert leaf_hash(canonical).hex() == proof["leaf_hash"]
    assert verify_inclusion(
        leaf_hash(canonical),
        3,
        head["size"],
        [bytes.fromhex(p) for p in proof["proof"]],
        bytes.fromhex(head["root"]),
    )

    # No input BSN, and no date of birth in any form (shifted to the 23rd birthday
    # included), on any topic, in any table, in any log or trace of this run.
    secret = {
        **{b: "an input BSN" for b in bsns},
        HOUSEHOLD: "the household id",
        **birth_date_forms(BORN),
        **unkeyed_forms({*bsns, HOUSEHOLD}),
    }
    opener = DeadLetterOpener.load(secrets.deadletter_private_key)
    assert_absent(secret, await topic_bytes(settings, opener=opener), "a Kafka topic")
    assert_absent(secret, database_dump(settings), "the database dump")
    for log in tmp_path.glob("*.log"):
        assert_absent(secret, log.read_bytes(), f"the log {log.name}")
    assert_absent(secret, (tmp_path / "traces.jsonl").read_bytes(), "the traces")

    # No id past intake is the partner's, or computable from it without intake's key:
    # the first version's registration ids (the partner's event id scoped unkeyed by the
    # partner id) let anyone who can make a pseudonym test guesses of child and theme.
    # The partners' topics: every signal sealed to intake, all of one size, nothing of its
    # theme, wijk or worker readable; intake's key opens them.
    keyring = IntakeKeyring.load(secrets.intake_keys)
    signals = [
        (partner, r)
        for partner in (SCHOOL, JGZ, GP)
        for r in await read_all(settings, topics.partner(partner))
        if dict(r.headers).get("vs-event-type") == b"SignalRegistered"
    ]
    assert len(signals) == 6  # three rows, each sent twice
    assert len({len(r.value) for _, r in signals}) == 1
    on_partner_topics = b"".join(r.value for _, r in signals)
    for clear in (b"schoolverzuim", b"opvoedvragen", b"armoede", b"WK099903", b"voorbeeldrade"):
        assert clear not in on_partner_topics
    partner_ids = {
        (partner, uuid.UUID(json.loads(opened)["event_id"]))
        for partner, r in signals
        if (opened := keyring.open(dict(r.headers)[SEALED_TO_HEADER].decode(), r.value))
    }
    assert len(partner_ids) == 3
    traceable = {str(event): "a partner's event id" for _, event in partner_ids} | {
        str(scoped_id(partner, event)): "an id computable from a partner's event id"
        for partner, event in partner_ids
    }
    downstream = await topic_bytes(settings, only=topics.internal())
    assert_absent(traceable, downstream, "an internal topic")
    assert_absent(traceable, database_dump(settings), "the database dump")


def settings_today():  # type: ignore[no-untyped-def]
    return datetime.now(UTC).date()


def birth_date_forms(born: date) -> dict[str, str]:
    """A date of birth as it might leak: as is, or shifted to the 23rd birthday, in the
    ways dates are written (ISO, compact, Dutch)."""
    forms = {}
    for shift, what in ((0, "the date of birth"), (23, "the 23rd birthday")):
        day = born.replace(year=born.year + shift)
        for text in (day.isoformat(), day.strftime("%Y%m%d"), day.strftime("%d-%m-%Y")):
            forms[text] = what
    return forms


def unkeyed_forms(values: set[str]) -> dict[str, str]:
    """What anyone could compute from a BSN or household id without a key: its common
    hashes (of the bare value and of the pseudonymiser's domain-separated input) and
    encodings. None of them may appear anywhere."""
    forms = {}
    for value in values:
        for raw in (value.encode(), bsn_input(value), household_input(value)):
            for name in ("md5", "sha1", "sha256", "sha512"):
                forms[hashlib.new(name, raw).hexdigest()] = f"an unkeyed {name} of an input"
            forms[base64.b64encode(raw).decode()] = "an input in base64"
    return forms


def assert_absent(secret: dict[str, str], data: bytes, where: str) -> None:
    """None of the secret values (value -> what it is) occurs in the data."""
    assert data, f"{where}: nothing was scanned"
    found = sorted({what for value, what in secret.items() if value.encode() in data})
    assert not found, f"{where} holds {', '.join(found)}"


async def topic_bytes(
    settings: Settings, only: list[str] | None = None, opener: DeadLetterOpener | None = None
) -> bytes:
    """Every key, value and header of every topic of this run (or of `only` these), and
    with `opener` what the sealed originals of dead letters hold too."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**login(settings))
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(settings.topic_prefix)]
    finally:
        await admin.close()
    if only is not None:
        names = [n for n in names if n in only]
    chunks: list[bytes] = []
    for name in names:
        for r in await read_all(settings, name):
            chunks.extend([r.key or b"", r.value or b""])
            chunks.extend(v for _, v in r.headers or ())
            if opener is not None and name == Topics(settings.topic_prefix).deadletter:
                original = opener.open(DeadLetter.model_validate_json(r.value))
                chunks.append(original.value if original else b"")
    return b"\n".join(chunks)


def database_dump(
    settings: Settings, schemas: tuple[str, ...] = (), url: str | None = None
) -> bytes:
    """pg_dump of the test's database (or `url`, such as the key store's)."""
    only = [f"--schema={s}" for s in schemas]
    return subprocess.run(
        [str(_bin_dir() / "pg_dump"), "--data-only", *only, url or settings.database_url],
        check=True,
        capture_output=True,
    ).stdout
