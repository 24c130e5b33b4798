"""The key store of per-subject data keys."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from shared.audit import AuditTrail
from shared.contracts import (
    AuditAction,
    AuditActor,
    Topics,
)
from shared.settings import Settings
from vroegsignaal.cli.app import app
from vroegsignaal.cli.common import as_operator
from vroegsignaal.console import fail

keystore_app = typer.Typer(help="The key store of per-subject data keys.", no_args_is_help=True)
app.add_typer(keystore_app, name="keystore")


@keystore_app.command("shred")
def keystore_shred(
    subject: Annotated[str, typer.Argument(help="The subject's matching-domain pseudonym.")],
) -> None:
    """Delete a subject's data key: every copy of its sealed fields becomes unreadable.
    Matching is told (on signals.accepted): it ends what is left of the subject, audits
    it and tells notification, which drops the copies it opened."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    from shared.contracts import SubjectShredded
    from shared.kafka import client_options
    from shared.keystore import KeyStore, KeyStoreError
    from shared.outbox import EVENT_TYPE_HEADER

    if len(subject) != 64 or any(c not in "0123456789abcdef" for c in subject):
        raise fail("the subject must be a 64-hex matching-domain pseudonym")
    settings = Settings()

    async def _shred() -> bool:
        store = await KeyStore.open(settings)
        try:
            shredded = await store.shred(subject)
        finally:
            await store.close()
        # Told even when the key was gone already: a re-run heals a message once lost.
        told = SubjectShredded(subject=subject, reason="an operator's keystore shred")
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            acks="all",
            **client_options(settings),
        )
        await producer.start()
        try:
            await producer.send_and_wait(
                Topics(settings.topic_prefix).accepted,
                told.to_bytes(),
                key=subject.encode(),
                headers=[(EVENT_TYPE_HEADER, b"SubjectShredded")],
            )
        finally:
            await producer.stop()
        return shredded

    try:
        shredded = asyncio.run(_shred())
    except KeyStoreError as exc:
        raise fail(str(exc)) from None
    except KafkaError as exc:
        raise fail(
            f"the key is shredded, but matching could not be told ({exc}); run the same "
            "command again when Kafka is reachable"
        ) from None
    typer.echo("shredded" if shredded else "no data key for that subject (already shredded?)")
    typer.echo("matching and notification are told; they drop what is left of the subject")


@keystore_app.command("reshred")
def keystore_reshred() -> None:
    """After restoring the key store from a backup: shred again every key the audit log
    records as shredded (subjects' data keys, family keys, trend-window keys). A key
    made after its shredding (the subject registered anew since) stays. Needs the audit
    log's database (DATABASE_URL) and the key store (KEYSTORE_DATABASE_URL)."""
    import asyncpg

    from services.audit.store import recorded_shreds
    from shared.db import DatabaseUnavailableError
    from shared.keystore import KeyStore, KeyStoreError

    settings = Settings()

    async def _reshred() -> tuple[int, list[str]]:
        conn = await asyncpg.connect(settings.database_url)
        try:
            await conn.execute("SET search_path TO audit")
            shreds = await recorded_shreds(conn)
        finally:
            await conn.close()
        store = await KeyStore.open(settings)
        try:
            return len(shreds), await store.reshred(shreds)
        finally:
            await store.close()

    try:
        recorded, again = asyncio.run(_reshred())
    except (KeyStoreError, DatabaseUnavailableError, OSError, asyncpg.PostgresError) as exc:
        raise fail(str(exc)) from None

    async def _logged(conn: Any, trail: AuditTrail, who: AuditActor) -> None:
        await trail.record(
            conn,
            action=AuditAction.SHRED,
            object_type="keystore-reshred",
            object_id=str(len(again)),
            actor=who,
            purpose=f"keystore: {len(again)} of {recorded} recorded shreddings re-applied "
            "after a restore",
        )

    as_operator("matching", "key-custodian", _logged)
    typer.echo(f"{recorded} shreddings in the audit log; {len(again)} keys were back and are "
               "shredded again")  # fmt: skip
