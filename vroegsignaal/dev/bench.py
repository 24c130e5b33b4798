"""`make bench`: this machine's raw ceilings, the whole pipeline under load, then
matching's cost per signal as history grows, the audit log's appends and the digest
deliveries, measured in one run.

The ceilings (vroegsignaal/dev/ceilings.py) are what a plain aiokafka client and
asyncpg reach on the same machine and broker: the limit each hop is compared with. The
pipeline (vroegsignaal/dev/pipeline.py) runs the whole stack: a backlog of registrations
through every hop, then a steady load for the latency. Matching and audit are measured
one message a transaction (as before batches) and in batches (as now). Matching
loads a fresh database with 10^4 and then 10^6 stored registrations, and after each
load runs the same batch of new signals through the matching service's own code path
(domain, store, key store, outbox), reporting signals per second, the 50th and 99th
percentile latency, and the ratio between the two sizes. Uses the local PostgreSQL
(started here) or DATABASE_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from services.matching import app as matching_app
from services.matching import handlers
from shared.batch import batch_transaction
from shared.contracts import OrganisationCategory, SealedSignal, SignalAccepted, WorkerContact
from shared.db import create_pool
from shared.kafka import client_options
from shared.keystore import KeyStore
from shared.policy import load_policy
from shared.service import ServiceRuntime, build_service
from shared.settings import Settings
from vroegsignaal.dev import pipeline, producer_bench
from vroegsignaal.dev.ceilings import kafka_ceilings, postgres_ceiling
from vroegsignaal.dev.harness import running
from vroegsignaal.dev.stack.local import Infrastructure, Ports, infrastructure
from vroegsignaal.dev.stack.procs import free_port
from vroegsignaal.provision.database import provision
from vroegsignaal.provision.kafka_access import ADMIN_USER
from vroegsignaal.provision.secrets import init_secrets

ORGS = (
    ("school", OrganisationCategory.ONDERWIJS),
    ("jgz", OrganisationCategory.JGZ),
    ("gp", OrganisationCategory.HUISARTS),
)


async def load_history(database_url: str, total: int, already: int) -> None:
    """Registrations of other subjects, as history; sealed blobs are never opened."""
    conn = await asyncpg.connect(database_url)
    now = datetime.now(UTC)
    try:
        batch = 50_000
        for start in range(already, total, batch):
            rows = [
                (
                    uuid.uuid4(),
                    secrets.token_hex(32),
                    ORGS[i % 3][0],
                    ORGS[i % 3][1].value,
                    "v1.AAAA",
                    now - timedelta(days=i % 700),
                    now + timedelta(days=30 + i % 700),
                    date(2040, 1, 1),
                )
                for i in range(start, min(total, start + batch))
            ]
            await conn.copy_records_to_table(
                "registrations",
                schema_name="matching",
                records=rows,
                columns=[
                    "registration_id",
                    "subject",
                    "organisation",
                    "organisation_category",
                    "sealed",
                    "registered_at",
                    "expires_at",
                    "age_limit_from",
                ],
            )
        await conn.execute("ANALYZE matching.registrations")
    finally:
        await conn.close()


async def signals(store: KeyStore, n: int) -> list[SignalAccepted]:
    """n new signals: pairs of organisations on new subjects, so half raise a match."""
    out: list[SignalAccepted] = []
    for i in range(n):
        subject = secrets.token_hex(32) if i % 2 == 0 else out[-1].subject
        org, category = ORGS[i % 2]
        event_id = uuid.uuid4()
        personal = SealedSignal(
            worker=WorkerContact(
                worker_id=f"{org}-1", display_name="Bench", email=f"{org}@bench.example"
            ),
            wijk="WK099901",
            parents=[secrets.token_hex(32)],
        )
        out.append(
            SignalAccepted(
                event_id=event_id,
                signal_id=event_id,
                partner_id=f"{org}-bench",
                subject=subject,
                organisation=org,
                organisation_category=category,
                registered_at=datetime.now(UTC),
                age_limit_month="2040-01",
                sealed=await store.seal(
                    subject, event_id.bytes, personal.model_dump_json().encode(), create=True
                ),
            )
        )
    return out


async def measure(
    matcher: handlers.Handlers, signals: list[SignalAccepted], pool: asyncpg.Pool, batch: int = 500
) -> dict[str, float]:
    """Half the signals one a transaction (as before batches), half in batches of `batch`
    in one transaction each (as the service takes them now)."""
    half = len(signals) // 2
    latencies = []
    started = time.perf_counter()
    for signal in signals[:half]:
        t = time.perf_counter()
        await matcher.on_accepted(signal, None)
        latencies.append(time.perf_counter() - t)
    alone = time.perf_counter() - started
    started = time.perf_counter()
    for at in range(half, len(signals), batch):
        async with batch_transaction(pool):
            for signal in signals[at : at + batch]:
                await matcher.on_accepted(signal, None)
    batched = time.perf_counter() - started
    latencies.sort()
    return {
        "per_second": half / alone,
        "batched_per_second": (len(signals) - half) / batched,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


async def run(database_url: str, sizes: list[int], per_size: int) -> list[dict[str, Any]]:
    secrets_dir = Path(tempfile.mkdtemp(prefix="vroegsignaal-bench-"))
    made = init_secrets(secrets_dir / "secrets", pseudonymiser_url="http://127.0.0.1:1")
    settings = Settings(
        DATABASE_URL=database_url,
        kek_file=made.kek,
        keystore_cache_seconds=0,
    )
    directory = Path(matching_app.__file__).parent
    policy = load_policy(settings.policy_file)
    holder: dict[str, handlers.Handlers] = {}

    def register(runtime: ServiceRuntime) -> list[Any]:
        holder["matcher"] = handlers.register(runtime, policy)
        return []

    _, runtime = build_service("matching", directory, settings, register, uses_keystore=True)
    runtime._pool = await create_pool(database_url, "matching")
    runtime._keystore = await KeyStore.open(settings)
    results = []
    loaded = 0
    try:
        for size in sizes:
            await load_history(database_url, size, loaded)
            loaded = size
            batch = await signals(runtime.keystore, per_size)
            result = await measure(holder["matcher"], batch, runtime.pool)
            results.append({"stored_registrations": size, **result})
            print(
                f"{size:>9,} stored: {result['per_second']:8.1f} signals/s one a transaction "
                f"(p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms), "
                f"{result['batched_per_second']:8.1f}/s in batches",
                flush=True,
            )
    finally:
        await runtime.keystore.close()
        await runtime.pool.close()
    return results


async def audit_history(database_url: str, total: int, already: int) -> None:
    """Bulk-load audit entries and their perfect subtrees, as appends would have made them."""
    from services.audit import merkle

    conn = await asyncpg.connect(database_url)
    now = datetime.now(UTC)
    try:
        known = (
            {
                (r["level"], r["position"]): bytes(r["hash"])
                for r in await conn.fetch("SELECT level, position, hash FROM audit.tree_nodes")
            }
            if already
            else {}
        )
        entries: list[tuple[Any, ...]] = []
        nodes: list[tuple[int, int, bytes]] = []
        for index in range(already, total):
            canonical = f'{{"bench":{index},"purpose":"inbox read"}}'.encode()
            leaf = merkle.leaf_hash(canonical)
            entries.append(
                (index, leaf, uuid.uuid4(), now, now, "read", "success", "bench", "service",
                 [], "alert-list", "bench", "b1", "inbox read", canonical)
            )  # fmt: skip

            def lookup(start: int, end: int) -> bytes:
                width = end - start
                return known[(width.bit_length() - 1, start // width)]

            for level, position, value in merkle.perfect_nodes_completed(index, leaf, lookup):
                known[(level, position)] = value
                nodes.append((level, position, value))
        await conn.execute("SET session_replication_role = replica")
        await conn.copy_records_to_table(
            "entries",
            schema_name="audit",
            records=entries,
            columns=[
                "leaf_index", "leaf_hash", "event_id", "occurred_at", "recorded_at", "action",
                "outcome", "actor_id", "actor_role", "subjects", "object_type",
                "source_system", "source_instance", "purpose", "canonical",
            ],
        )  # fmt: skip
        await conn.copy_records_to_table(
            "tree_nodes", schema_name="audit", records=nodes, columns=["level", "position", "hash"]
        )
        await conn.execute("ANALYZE audit.entries; ANALYZE audit.tree_nodes")
    finally:
        await conn.close()


async def run_audit(
    database_url: str, sizes: list[int], appends: int, batch: int = 500
) -> list[dict[str, Any]]:
    from services.audit import store as audit_store
    from services.audit.domain import entry_from
    from shared.contracts import AuditAction, AuditActor, AuditEvent, AuditOutcome

    pool = await create_pool(database_url, "audit")
    results = []
    loaded = 0
    try:
        for size in sizes:
            await audit_history(database_url, size, loaded)
            events = [
                AuditEvent(
                    action=AuditAction.READ,
                    outcome=AuditOutcome.SUCCESS,
                    actor=AuditActor(actor_id="bench", role="service"),
                    object_type="alert-list",
                    source_system="bench",
                    source_instance="b1",
                    purpose="inbox read",
                )
                for _ in range(appends)
            ]
            # As the service did before batches (one entry a transaction), then as it
            # does now (what a batch of messages brings, in one step).
            half = len(events) // 2
            started = time.perf_counter()
            for event in events[:half]:
                async with pool.acquire() as conn, conn.transaction():
                    await audit_store.append(conn, entry_from(event, datetime.now(UTC)))
            alone = time.perf_counter() - started
            started = time.perf_counter()
            for at in range(half, len(events), batch):
                async with pool.acquire() as conn, conn.transaction():
                    await audit_store.append(
                        conn, *(entry_from(e, datetime.now(UTC)) for e in events[at : at + batch])
                    )
            batched = time.perf_counter() - started
            elapsed = alone + batched
            loaded = size + appends
            async with pool.acquire() as conn:
                inclusion = await audit_store.inclusion(conn, loaded // 3, loaded)
                consistency = await audit_store.consistency(conn, loaded // 2, loaded)
            result = {
                "entries": size,
                "appends_per_second": appends / elapsed,
                "one_a_transaction_per_second": half / alone,
                "batched_per_second": (len(events) - half) / batched,
                "inclusion_proof_hashes": len(inclusion),
                "consistency_proof_hashes": len(consistency),
            }
            results.append(result)
            print(
                f"{size:>9,} entries: {result['one_a_transaction_per_second']:8.1f} appends/s "
                f"one a transaction, {result['batched_per_second']:8.1f}/s in batches of "
                f"{batch}; inclusion "
                f"proof {len(inclusion)} hashes ({32 * len(inclusion)} bytes), consistency "
                f"proof {len(consistency)} hashes",
                flush=True,
            )
    finally:
        await pool.close()
    return results


@contextlib.contextmanager
def mail_server() -> Iterator[int]:
    """The local SMTP server of `dev up` (a Maildir in a temporary folder); its port."""
    import subprocess
    import sys

    from vroegsignaal.dev.stack.procs import stop_process, wait_for_port

    maildir = Path(tempfile.mkdtemp(prefix="vroegsignaal-bench-mail-"))
    for part in ("tmp", "new", "cur"):
        (maildir / part).mkdir()
    port = free_port()
    mail = subprocess.Popen(
        [sys.executable, "-m", "vroegsignaal", "dev", "mail", "--listen", f"127.0.0.1:{port}",
         str(maildir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for_port(port, mail, "mail", maildir / "none.log", 30)
        yield port
    finally:
        stop_process(mail, timeout=10)


async def run_deliveries(
    database_url: str, alerts: int, workers: int, port: int
) -> dict[str, float]:
    """Alerts for many workers (as after a partner's export) through the digest composer
    and the delivery loop into a local SMTP server: how fast alerts become digests and
    digests become e-mails, against one e-mail per alert before digests."""
    import httpx

    from services.notification import app as notification_app
    from services.notification import store as notification_store
    from services.notification.channels import EmailChannel, WebhookChannel
    from services.notification.delivery import Deliverer, DigestComposer
    from services.notification.domain import Alert, Part, alert_id
    from shared.contracts import MatchKind

    directory = Path(notification_app.__file__).parent

    settings = Settings(DATABASE_URL=database_url)
    _, runtime = build_service("notification", directory, settings, lambda _: [])
    runtime._pool = await create_pool(database_url, "notification")
    people = [
        WorkerContact(worker_id=f"w{n}", display_name=f"W {n}", email=f"w{n}@bench.example")
        for n in range(workers)
    ]
    client = httpx.AsyncClient()
    try:
        async with runtime.pool.acquire() as conn, conn.transaction():
            for n in range(alerts):
                match_id = uuid.uuid4()
                recipient = people[n % workers]
                alert = Alert(
                    alert_id(match_id, recipient.worker_id, MatchKind.PERSON, "raised"),
                    match_id, MatchKind.PERSON, "raised", Part.REGISTRANT, recipient, (), None,
                    "bench",
                )  # fmt: skip
                await notification_store.add_alert(conn, alert, [secrets.token_hex(32)])
                await notification_store.queue_for_digest(conn, alert)
        policy = load_policy(settings.policy_file).notification.digest
        started = time.perf_counter()
        digests = await DigestComposer(lambda: runtime.pool, policy).run_once()
        composed = time.perf_counter() - started
        email = EmailChannel("127.0.0.1", port, "vroegsignaal@bench.example", "https://inbox")
        deliverer = Deliverer(runtime, email, WebhookChannel(client), [])
        started = time.perf_counter()
        sent = await deliverer.run_once()
        delivered = time.perf_counter() - started
    finally:
        await client.aclose()
        await runtime.pool.close()
    return {
        "alerts": alerts,
        "digests": digests,
        "alerts_per_second_composed": alerts / composed,
        "emails": sent,
        "emails_per_second": sent / delivered,
    }


@contextlib.contextmanager
def _stack(*, kafka: bool) -> Iterator[tuple[Infrastructure, str]]:
    """PostgreSQL (and Kafka), local unless the environment points at external ones,
    with a fresh database provisioned as `dev up` makes it; all removed afterwards."""
    with contextlib.ExitStack() as stack:
        if not kafka and not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            stack.enter_context(_environment("KAFKA_BOOTSTRAP_SERVERS", "unused:9092"))
        data = Path(tempfile.mkdtemp(prefix="vroegsignaal-bench-"))
        data.chmod(0o755)
        stack.callback(shutil.rmtree, data, ignore_errors=True)
        infra = stack.enter_context(
            infrastructure(
                data,
                Ports(
                    kafka=free_port() if kafka else 0,
                    kafka_controller=free_port() if kafka else 0,
                    postgres=free_port(),
                ),
                kafka_admin_password=secrets.token_urlsafe(24),
            )
        )
        base = infra.database_url
        name = f"bench_{uuid.uuid4().hex[:8]}"
        url = base.rsplit("/", 1)[0] + "/" + name

        async def create() -> None:
            conn = await asyncpg.connect(base)
            await conn.execute(f'CREATE DATABASE "{name}"')
            await conn.close()
            # Roles, schemas and the key store's own database, as `dev up` makes them.
            await provision(url, {})

        asyncio.run(create())
        yield infra, url


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    os.environ[name] = value
    try:
        yield
    finally:
        del os.environ[name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--signals", type=int, default=2000)
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=500)
    parser.add_argument("--ceiling-messages", type=int, default=200_000)
    parser.add_argument("--producer-rows", type=int, default=1_000_000)
    parser.add_argument("--pipeline-rows", type=int, default=100_000)
    parser.add_argument("--backlog-rate", type=float, default=500.0)
    parser.add_argument("--steady-rate", type=float, default=200.0)
    parser.add_argument("--steady-seconds", type=int, default=60)
    parser.add_argument(
        "--parts",
        default="ceilings,producer,pipeline,matching,audit,deliveries",
        help="which of them to measure",
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    sizes = [int(s) for s in args.sizes.split(",")]

    if "ceilings" in parts:
        # On a stack of their own, stopped before the rest is measured: the broker's JVM
        # takes no CPU from the others on a small machine.
        print("ceilings: plain clients on this machine, the limit of every hop", flush=True)
        settings = Settings()
        with _stack(kafka=True) as (infra, url):
            login: dict[str, Any] = {"bootstrap_servers": infra.kafka_bootstrap_servers}
            if infra.kafka_admin_password is not None:
                login |= {
                    "security_protocol": "SASL_PLAINTEXT",
                    "sasl_mechanism": "SCRAM-SHA-512",
                    "sasl_plain_username": ADMIN_USER,
                    "sasl_plain_password": infra.kafka_admin_password,
                }
            else:  # an external cluster: its login, prefix and replication
                login |= client_options(settings)
            kafka = asyncio.run(
                kafka_ceilings(
                    login,
                    args.ceiling_messages,
                    prefix="" if infra.kafka_local else settings.topic_prefix,
                    replication=1 if infra.kafka_local else settings.topic_replication_factor,
                )
            )
            rows = asyncio.run(postgres_ceiling(url, args.ceiling_messages // 2))
        print(
            f"aiokafka produce (acks=all, idempotent): {kafka['produce_per_second']:,.0f}"
            f" msg/s; consume, decode and commit: {kafka['consume_commit_per_second']:,.0f}"
            f" msg/s; asyncpg batched insert: {rows['batched_insert_per_second']:,.0f} rows/s",
            flush=True,
        )
        ceilings = {**kafka, **rows}
    else:
        ceilings = {}
    if "producer" in parts:
        print("producer: one partner's export through `partner send`", flush=True)
        with tempfile.TemporaryDirectory(prefix="vroegsignaal-producer-") as data:
            Path(data).chmod(0o755)
            sent = producer_bench.producer(args.producer_rows, Path(data), print)
        voprf = sent["voprf"]
        print(
            f"{sent['rows']:,} rows in {sent['seconds']:.0f} s: {sent['rows_per_second']:,.0f} "
            f"rows/s, peak RSS {sent['peak_rss_mib']:.0f} MiB; VOPRF ceiling on this machine: "
            f"{voprf['client_elements_per_second']:,.0f} elements/s blinded and finalized, "
            f"{voprf['server_elements_per_second']:,.0f}/s evaluated with proofs: at most "
            f"{voprf['rows_per_second']:,.0f} rows/s of {producer_bench.ELEMENTS_PER_ROW} "
            "elements",
            flush=True,
        )
    if "pipeline" in parts:
        print("pipeline: the whole stack, a backlog and then a steady load", flush=True)
        with tempfile.TemporaryDirectory(prefix="vroegsignaal-pipeline-") as data:
            Path(data).chmod(0o755)
            with running(Path(data), count_statements=True) as whole:
                partner_ids = sorted(
                    p.stem for p in whole.secrets.partner_config("x").parent.glob("*.yaml")
                )
                result = pipeline.backlog(
                    whole, partner_ids, args.pipeline_rows, args.backlog_rate, print
                )
                print(pipeline.report(result, ceilings), flush=True)
                held = pipeline.steady(
                    whole, partner_ids, args.steady_rate, args.steady_seconds, print
                )
                print(
                    f"steady {held['rate']:g}/s for {held['seconds']} s: intake to alert p50 "
                    f"{held['p50_ms'] or 0:.0f} ms, p99 {held['p99_ms'] or 0:.0f} ms over "
                    f"{held['alerts_traced']} alerted signals (p50 by step: "
                    + ", ".join(f"{k} {v:.0f} ms" for k, v in held["steps_p50_ms"].items())
                    + "); at most "
                    f"{held['intake_waiting_max']} waiting for intake; peak RSS "
                    + ", ".join(f"{n} {m:.0f} MiB" for n, m in held["peak_rss_mib"].items())
                    + (f"; never drained: {held['left_waiting']}" if held["left_waiting"] else ""),
                    flush=True,
                )
    with contextlib.ExitStack() as stack:
        _, url = stack.enter_context(_stack(kafka=False))
        if "matching" in parts:
            print("matching: cost per signal as history grows", flush=True)
            results = asyncio.run(run(url, sizes, args.signals))
            first, last = results[0], results[-1]
            ratio = first["batched_per_second"] / last["batched_per_second"]
            print(
                f"cost per signal (in batches) at {last['stored_registrations']:,} vs "
                f"{first['stored_registrations']:,} stored registrations: {ratio:.2f}x "
                "(1.00 = flat; the target is at most 1.3)",
                flush=True,
            )
        if "audit" in parts:
            print("audit: appends and proof sizes as the log grows", flush=True)
            audit = asyncio.run(run_audit(url, sizes, args.appends))
            ratio = audit[-1]["appends_per_second"] / audit[0]["appends_per_second"]
            print(
                f"append throughput at {audit[-1]['entries']:,} vs {audit[0]['entries']:,} "
                f"entries: {ratio:.2f}x (proofs grow with log2 of the size)",
                flush=True,
            )
        if "deliveries" not in parts:
            return
        print("deliveries: alerts after an export, as digest e-mails", flush=True)
        port = stack.enter_context(mail_server())
        mails = asyncio.run(run_deliveries(url, args.alerts, args.workers, port))
    print(
        f"{mails['alerts']:,} alerts for {args.workers} workers: {mails['digests']} digests "
        f"composed at {mails['alerts_per_second_composed']:,.0f} alerts/s; "
        f"{mails['emails']} e-mails sent at {mails['emails_per_second']:.0f}/s, "
        f"{mails['alerts'] / max(mails['emails'], 1):.0f} alerts per e-mail (one e-mail "
        f"per alert would have taken {mails['alerts'] / mails['emails_per_second']:.0f} s "
        "at that rate)"
    )


if __name__ == "__main__":
    main()
