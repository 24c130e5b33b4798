"""The `vroegsignaal` command line."""

from __future__ import annotations

import asyncio
import csv
import getpass
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from services.intake.domain import PartnerRegistryError
from shared.audit import AuditTrail
from shared.contracts import (
    AuditAction,
    AuditActor,
    AuditOutcome,
    DeadLetter,
    Topics,
    export_schemas,
)
from shared.settings import Settings
from vroegsignaal.issuer_cli import issuer_app
from vroegsignaal.partner.cli import partner_app
from vroegsignaal.stack.errors import StackError
from vroegsignaal.stack.secrets import PARTNERS_TEMPLATE

app = typer.Typer(
    help="vroegsignaal: early signals for youth care, privacy by design.", no_args_is_help=True
)
dev = typer.Typer(
    help="The local stack: Kafka, PostgreSQL, the services, a simulated municipality.",
    no_args_is_help=True,
)
schemas = typer.Typer(help="The JSON Schemas of the event contracts.", no_args_is_help=True)
app.add_typer(dev, name="dev")
app.add_typer(schemas, name="schemas")


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


@dev.command("mail")
def dev_mail(
    maildir: Annotated[Path, typer.Argument(help="Where the received e-mail is kept (Maildir)")],
    listen: Annotated[str, typer.Option(help="host:port to listen on")] = "127.0.0.1:8025",
) -> None:
    """A local SMTP server (aiosmtpd) for the dev stack: every e-mail lands in a Maildir."""
    from aiosmtpd.main import main as smtpd

    smtpd(["-n", "-l", listen, "-c", "aiosmtpd.handlers.Mailbox", str(maildir)])


@dev.command("up")
def dev_up(
    rate: Annotated[float, typer.Option(help="Simulated signals per second.")] = 2.0,
    bad_every: Annotated[
        int, typer.Option(help="Send a malformed message every N (0: never).")
    ] = 50,
) -> None:
    """Start everything in the foreground; Ctrl-C stops it all. Data survives a restart."""
    from shared.db import DatabaseUnavailableError
    from shared.kafka import BrokerUnavailableError
    from vroegsignaal import devstack

    try:
        devstack.up(Settings(), rate=rate, bad_every=bad_every)
    except (
        StackError,
        PartnerRegistryError,
        BrokerUnavailableError,
        DatabaseUnavailableError,
    ) as exc:
        raise _fail(str(exc)) from None


@dev.command("down")
def dev_down() -> None:
    """Stop Kafka, PostgreSQL and services left running by a killed 'dev up'."""
    from vroegsignaal.devstack import DATA_DIR
    from vroegsignaal.stack.local import stop_leftovers

    stopped = stop_leftovers(DATA_DIR)
    typer.echo("stopped: " + ", ".join(stopped) if stopped else "nothing was left running")


@dev.command("prepare")
def dev_prepare() -> None:
    """Check Java and resolve Kafka's jars once, so later starts need no network."""
    import os

    from vroegsignaal.stack.kafka import ensure_jars, java_binary

    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        typer.echo("KAFKA_BOOTSTRAP_SERVERS is set: no local Kafka needed")
        return
    try:
        java_binary()
        typer.echo(f"Kafka jars in {ensure_jars()}")
    except StackError as exc:
        raise _fail(str(exc)) from None


@app.command("serve")
def serve(
    service: Annotated[str, typer.Argument(help="intake, matching, notification or audit")],
) -> None:
    """Run one service in the foreground (what each container runs)."""
    from shared.keystore import KeyStoreError
    from vroegsignaal.services import SERVICES
    from vroegsignaal.services import serve as run_service

    if service not in SERVICES:
        raise _fail(f"unknown service {service!r}; choose one of: {', '.join(SERVICES)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        run_service(service, Settings())
    except (PartnerRegistryError, KeyStoreError, OSError, ValueError) as exc:
        # A broken policy, roster, webhooks file or Kafka login: one message with the fix.
        raise _fail(str(exc)) from None


@app.command("simulate")
def simulate(
    secrets_dir: Annotated[
        Path,
        typer.Option(envvar="VS_PARTNER_SECRETS", help="The directory of partner configurations."),
    ],
    rate: Annotated[float, typer.Option(help="Signals per second.")] = 2.0,
    count: Annotated[
        int | None, typer.Option(help="Stop after this many (default: never).")
    ] = None,
    families: Annotated[int, typer.Option(help="Synthetic families in the municipality.")] = 2000,
    at_risk: Annotated[int, typer.Option(help="Children that draw most of the signals.")] = 60,
    bad_every: Annotated[
        int, typer.Option(help="Send a malformed message every N (0: never).")
    ] = 0,
    seed: Annotated[int | None, typer.Option(help="Seed for a reproducible run.")] = None,
) -> None:
    """Run the simulated municipality: partners keep registering synthetic concerns."""
    from vroegsignaal import simulator

    logging.basicConfig(level=logging.WARNING)
    try:
        sent = asyncio.run(
            simulator.run(
                Settings(),
                secrets_dir=secrets_dir,
                rate=rate,
                count=count,
                families=families,
                at_risk=at_risk,
                bad_every=bad_every,
                seed=seed,
            )
        )
    except KeyboardInterrupt:
        return
    typer.echo(f"sent {sent} messages")


@app.command("topics")
def topics() -> None:
    """Create every topic (internal and one per partner) with the configured partitions."""
    from services.intake.app import load_partners
    from shared.kafka import BrokerUnavailableError, ensure_topics

    settings = Settings()
    try:
        created = asyncio.run(
            ensure_topics(settings, [p.partner_id for p in load_partners(settings)])
        )
    except (BrokerUnavailableError, PartnerRegistryError) as exc:
        raise _fail(str(exc)) from None
    typer.echo("created: " + ", ".join(created) if created else "all topics exist")


@app.command("migrate")
def migrate() -> None:
    """Set up the database as an administrator (DATABASE_URL): one login role per process,
    the migration role owning every schema, the migrations, each role's grants. Run it
    before the services start (they never migrate). Passwords from VS_DATABASE_ROLES_FILE."""
    from shared.db import DatabaseUnavailableError
    from vroegsignaal.stack.database import load_passwords, provision

    settings = Settings()
    try:
        done = asyncio.run(
            provision(
                settings.database_url,
                load_passwords(settings.database_roles_file),
                settings.keystore_admin_database_url,
            )
        )
    except (DatabaseUnavailableError, OSError, StackError) as exc:
        raise _fail(str(exc)) from None
    for schema, applied in done.items():
        typer.echo(f"{schema}: {', '.join(applied) if applied else 'up to date'}")


@schemas.command("export")
def schemas_export(
    directory: Annotated[Path, typer.Argument(help="Where to write the JSON Schema files.")],
) -> None:
    """Write the JSON Schema of every event contract."""
    for path in export_schemas(directory):
        typer.echo(str(path))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


secrets_app = typer.Typer(help="Secrets for a local stack or a test run.", no_args_is_help=True)
app.add_typer(partner_app, name="partner")
app.add_typer(secrets_app, name="secrets")


@secrets_app.command("init")
def secrets_init(
    directory: Annotated[Path, typer.Argument(help="Where to create the secrets.")],
    domain: Annotated[
        str | None,
        typer.Option(
            help="One trust domain's keys, for production: pseudonymiser, gateway, keystore, "
            "audit, deadletter, database or partner (README 'Key ceremony'). Without it: "
            "every domain's in one directory, for a local stack only."
        ),
    ] = None,
    partner_id: Annotated[
        str | None, typer.Option("--partner", help="--domain partner: the partner's id.")
    ] = None,
    pseudonymiser_public: Annotated[
        Path | None,
        typer.Option(help="--domain partner: public/pseudonymiser-public.yaml (pinned keys)."),
    ] = None,
    intake_public: Annotated[
        Path | None,
        typer.Option(help="--domain partner: public/intake-public.yaml (sealing keys)."),
    ] = None,
    pseudonymiser_url: Annotated[str, typer.Option()] = "http://127.0.0.1:8105",
    partners: Annotated[
        Path,
        typer.Option(
            help="The partner list (id, organisation, category, themes), such as "
            "config/partners.yaml, the fictional municipality's."
        ),
    ] = PARTNERS_TEMPLATE,
) -> None:
    """Create the keys that are missing (never overwrites a key). Without --domain, for a
    local stack: partners.yaml and pseudonymiser-credentials.yaml are derived, on every
    run, from the partner list and each partner's keys. With --domain, one trust domain's
    keys only, refused where another domain's are; what the others need goes to public/."""
    from vroegsignaal.stack import secrets as ceremony

    if not partners.is_file():
        raise _fail(f"no partner list at {partners}: pass --partners <file>")
    if domain is None:
        made = ceremony.init_secrets(
            directory, pseudonymiser_url=pseudonymiser_url, template=partners
        )
        typer.echo(f"secrets in {made.directory}")
        typer.secho(
            "LOCAL STACK ONLY: every trust domain's keys are in this one directory, both "
            "halves of the split trust together. For production make each domain's keys "
            "on its own with --domain (README 'Key ceremony').",
            fg=typer.colors.YELLOW,
            err=True,
        )
        return
    try:
        if domain == "partner" and (
            partner_id is None or pseudonymiser_public is None or intake_public is None
        ):
            raise ceremony.CeremonyError(
                "--domain partner needs --partner <id>, --pseudonymiser-public and "
                "--intake-public (the municipality hands both files out)"
            )
        out = ceremony.claim_directory(directory, domain, partner_id)
        if domain == "partner":
            assert pseudonymiser_public is not None and intake_public is not None
            listed = {str(p["id"]): p for p in yaml_load(partners).get("partners") or []}
            if partner_id not in listed:
                raise ceremony.CeremonyError(f"{partner_id!r} is not in {partners}")
            ceremony.make_partner(
                out,
                {k: v for k, v in listed[partner_id].items() if k in ("id", "organisation")},
                pseudonymiser_url=pseudonymiser_url,
                pseudonymiser_public=yaml_load(pseudonymiser_public),
                intake_public=yaml_load(intake_public),
                kafka=False,
            )
        else:
            {
                "pseudonymiser": ceremony.make_pseudonymiser,
                "gateway": ceremony.make_gateway,
                "keystore": ceremony.make_keystore,
                "audit": ceremony.make_audit,
                "deadletter": ceremony.make_deadletter,
                "database": ceremony.make_database,
            }[domain](out)
    except (ceremony.CeremonyError, OSError) as exc:
        raise _fail(str(exc)) from None
    handed = (
        sorted(p.name for p in (directory / "public").glob("*"))
        if (directory / "public").is_dir()
        else []
    )
    typer.echo(f"{domain} keys in {directory}")
    if handed:
        typer.echo("hand over (public, no secret): " + ", ".join(f"public/{h}" for h in handed))


@secrets_app.command("assemble")
def secrets_assemble(
    directory: Annotated[Path, typer.Argument(help="Where to write the two files.")],
    exports: Annotated[list[Path], typer.Argument(help="Each partner's public/partner-<id>.yaml.")],
    partners: Annotated[
        Path, typer.Option(help="The partner list (id, organisation, category, themes).")
    ] = PARTNERS_TEMPLATE,
) -> None:
    """From the partner list and the partners' public exports: intake's partners.yaml
    (signing keys) and the pseudonymiser's pseudonymiser-credentials.yaml (token hashes).
    Neither holds a secret."""
    from vroegsignaal.stack import secrets as ceremony

    try:
        found = {str(doc["partner_id"]): doc for doc in (yaml_load(e) for e in exports)}
        written = ceremony.assemble(ceremony.Secrets(directory), partners, found)
    except (ceremony.CeremonyError, OSError, KeyError) as exc:
        raise _fail(str(exc)) from None
    typer.echo("wrote " + ", ".join(str(w) for w in written))


def yaml_load(path: Path) -> dict[str, Any]:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise _fail(f"cannot read {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise _fail(f"{path}: expected a mapping")
    return doc


@secrets_app.command("database-env")
def secrets_database_env(
    directory: Annotated[Path, typer.Argument(help="Where 'secrets init' made the secrets.")],
) -> None:
    """Print each database role's password as VS_DB_<ROLE>=... lines, for the compose
    file's .env (`>> .env`): each service logs in as its own role."""
    from vroegsignaal.stack.database import load_passwords
    from vroegsignaal.stack.secrets import Secrets

    path = Secrets(directory).database_roles
    if not path.is_file():
        raise _fail(f"no {path}: run 'vroegsignaal secrets init {directory}' first")
    for role, password in sorted(load_passwords(path).items()):
        typer.echo(f"VS_DB_{role.removeprefix('vs_').upper()}={password}")


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
        raise _fail("the subject must be a 64-hex matching-domain pseudonym")
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
        raise _fail(str(exc)) from None
    except KafkaError as exc:
        raise _fail(
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
        raise _fail(str(exc)) from None

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

    _as_operator("matching", "key-custodian", _logged)
    typer.echo(f"{recorded} shreddings in the audit log; {len(again)} keys were back and are "
               "shredded again")  # fmt: skip


matching_app = typer.Typer(help="The matching engine, offline.", no_args_is_help=True)
app.add_typer(matching_app, name="matching")


@matching_app.command("replay")
def matching_replay(
    policy: Annotated[Path, typer.Option(help="The policy file to decide with.")],
    input_file: Annotated[
        Path, typer.Option("--input", help="SignalAccepted events, one JSON object a line.")
    ],
    output: Annotated[Path, typer.Option(help="Where to write the decisions (JSON lines).")],
    keystore: Annotated[
        bool,
        typer.Option(help="Open sealed fields (family links) through the key store."),
    ] = True,
) -> None:
    """Run the matching rules over a file of accepted signals and write every decision:
    what a policy change would do. The same input gives the same output, byte for byte."""
    from services.matching.replay import ReplayInputError, read_events, replay, write_decisions
    from shared.contracts import SealedSignal, SignalAccepted
    from shared.keystore import KeyShredded, KeyStore, KeyStoreError
    from shared.policy import Policy, PolicyError

    async def _run() -> int:
        rules = Policy.parse(policy.read_text(), source=str(policy))
        events = read_events(input_file)
        store = await KeyStore.open(Settings()) if keystore else None

        async def open_sealed(event: SignalAccepted) -> SealedSignal | None:
            assert store is not None
            try:
                raw = await store.open_sealed(event.subject, event.event_id.bytes, event.sealed)
            except KeyShredded:
                return None
            return SealedSignal.model_validate_json(raw)

        try:
            records = await replay(rules, events, open_sealed if store else None)
        finally:
            if store is not None:
                await store.close()
        write_decisions(output, records)
        return len(records)

    try:
        written = asyncio.run(_run())
    except (PolicyError, ReplayInputError, KeyStoreError, OSError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"{written} decisions written to {output}")


deadletter_app = typer.Typer(
    help="Dead letters: what could not be processed, and a partner's originals back.",
    no_args_is_help=True,
)
app.add_typer(deadletter_app, name="deadletter")


@deadletter_app.command("open")
def deadletter_open(
    key: Annotated[
        Path,
        typer.Option(
            help="The dead-letter key's private half (deadletter-private.yaml): the "
            "operator's alone, never a service's."
        ),
    ],
    out: Annotated[Path, typer.Argument(help="Directory for the opened originals.")],
    partner: Annotated[
        str | None, typer.Option(help="Only the letters of this partner's topic.")
    ] = None,
) -> None:
    """Write the sealed originals of the dead letters still on the topic (a short
    retention) to OUT: one file per letter, `<letter id>.bin`, with `index.csv` (letter,
    partner, reason code, reason, size, truncated). Hand a partner only its own, over the
    covenant's secure channel: they hold the content of its rejected signals."""
    from shared.deadletter import DeadLetterKeyError, DeadLetterOpener
    from shared.kafka import read_to_end

    try:
        opener = DeadLetterOpener.load(key)
    except DeadLetterKeyError as problem:
        raise _fail(str(problem)) from None
    settings = Settings()
    records = asyncio.run(read_to_end(settings, Topics(settings.topic_prefix).deadletter))
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o700)
    opened = skipped = 0
    with (out / "index.csv").open("w", newline="", encoding="utf-8") as index:
        rows = csv.writer(index)
        rows.writerow(["letter", "partner", "reason_code", "reason", "size", "truncated"])
        for record in records:
            try:
                letter = DeadLetter.model_validate_json(record.value or b"{}")
            except ValueError:
                skipped += 1  # a letter of an earlier version: it holds no sealed original
                continue
            if partner is not None and letter.partner_id != partner:
                continue
            try:
                original = opener.open(letter)
            except DeadLetterKeyError as problem:
                typer.echo(f"skipped: {problem}", err=True)
                original = None
            if original is None:
                skipped += 1
                continue
            path = out / f"{letter.event_id}.bin"
            path.write_bytes(original.value)
            path.chmod(0o600)
            rows.writerow(
                [letter.event_id, letter.partner_id or "", letter.reason_code, letter.reason,
                 letter.original_size, letter.original_truncated]
            )  # fmt: skip
            opened += 1
    typer.echo(f"opened {opened} dead letters into {out}; {skipped} without an original here")


audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(
    public_key: Annotated[
        str,
        typer.Option(
            envvar="VS_AUDIT_PUBLIC_KEY", help="The audit service's Ed25519 public key (hex)."
        ),
    ],
    topic: Annotated[
        bool, typer.Option(help="Also check against the heads published on Kafka.")
    ] = True,
) -> None:
    """Recompute the audit log's tree and every signed head; report what is wrong.
    Exit 0 when intact, 2 when anything was found."""
    from services.audit.check import check

    try:
        key = bytes.fromhex(public_key.strip())
    except ValueError:
        raise _fail("the public key must be 64 hex characters") from None
    problems = asyncio.run(check(Settings(), key, with_topic=topic))
    if not problems:
        typer.echo("the audit log is intact: every entry, the tree and every signed head verify")
        return
    for problem in problems:
        typer.echo(f"PROBLEM: {problem}")
    raise typer.Exit(code=2)


@audit_app.command("export")
def audit_export(
    start: Annotated[str, typer.Option("--from", help="ISO date-time, inclusive")],
    end: Annotated[str, typer.Option("--to", help="ISO date-time, exclusive")],
    output: Annotated[Path, typer.Option(help="Where to write the JSON lines")],
) -> None:
    """Export a period of the audit log with inclusion proofs against a signed head."""

    from services.audit.check import ExportError, export

    try:
        since, until = datetime.fromisoformat(start), datetime.fromisoformat(end)
    except ValueError:
        raise _fail("--from and --to must be ISO date-times, e.g. 2026-11-01T00:00+01:00") from None
    try:
        lines = asyncio.run(export(Settings(), since, until))
    except ExportError as exc:
        raise _fail(str(exc)) from None
    output.write_text("".join(line + "\n" for line in lines))

    async def _logged(conn: Any, trail: AuditTrail, who: AuditActor) -> None:
        await trail.record(
            conn,
            action=AuditAction.EXPORT,
            object_type="audit-log",
            object_id=f"{since.isoformat()}/{until.isoformat()}",
            actor=who,
            purpose=f"audit: export of {len(lines) - 1} entries with their proofs",
        )

    _as_operator("audit", "privacy_officer", _logged)
    typer.echo(f"{len(lines) - 1} entries with their proofs in {output}")


@audit_app.command("verify-export")
def audit_verify_export(
    export_file: Annotated[Path, typer.Argument(help="An export from 'audit export'")],
    public_key: Annotated[
        str, typer.Option(envvar="VS_AUDIT_PUBLIC_KEY", help="The audit public key (hex).")
    ],
) -> None:
    """Verify an export with nothing but the public key (what a third party runs)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from services.audit.verify import verify_export

    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key.strip()))
    except ValueError:
        raise _fail("the public key must be 64 hex characters") from None
    verified, problems = verify_export(export_file.read_text().splitlines(), key)
    for problem in problems:
        typer.echo(f"PROBLEM: {problem}")
    if problems:
        raise typer.Exit(code=2)
    typer.echo(f"all {verified} entries are in the signed log")


@audit_app.command("report")
def audit_report(
    request_id: Annotated[str, typer.Argument(help="The id 'partner subject-report' printed")],
    html_file: Annotated[
        Path | None, typer.Option("--html", help="Also write a printable page here.")
    ] = None,
) -> None:
    """Print a data subject's access report (JSON), for the privacy officer."""
    import json
    import uuid

    from services.audit.report import report_html
    from services.audit.store import report_subjects

    try:
        wanted = uuid.UUID(request_id)
    except ValueError:
        raise _fail("the request id is a UUID, as 'partner subject-report' printed it") from None

    async def _load(conn: Any, trail: AuditTrail, who: AuditActor) -> object:
        found = await conn.fetchval(
            "SELECT report FROM subject_reports WHERE request_id = $1", wanted
        )
        await trail.record(
            conn,
            action=AuditAction.READ,
            outcome=AuditOutcome.SUCCESS if found else AuditOutcome.FAILED,
            object_type="subject-report",
            object_id=str(wanted),
            subjects=await report_subjects(conn, wanted),
            actor=who,
            purpose="audit: the privacy officer reads a data subject's access report",
        )
        return found

    raw = _as_operator("audit", "privacy_officer", _load)
    if raw is None:
        raise _fail("no report for that request (yet): the audit service builds it shortly")
    report = json.loads(str(raw))
    typer.echo(json.dumps(report, indent=2))
    if html_file is not None:
        html_file.write_text(report_html(report))


erasure_app = typer.Typer(
    help="Erasing a data subject as a whole: the privacy officer's decision on partners' "
    "erasure requests where other organisations keep registrations. Through the audit "
    "service's API with the officer's own OIDC token (role privacy_officer): who decides "
    "is who the token says, never a name typed in. Every step is audited.",
    no_args_is_help=True,
)
app.add_typer(erasure_app, name="erasure")

TokenOption = Annotated[
    str,
    typer.Option(
        envvar="VS_TOKEN",
        help="The privacy officer's access token (locally: 'vroegsignaal issuer token "
        "fg-voorbeeldrade').",
    ),
]
AuditUrlOption = Annotated[
    str | None,
    typer.Option(envvar="VS_AUDIT_URL", help="The audit service (default: the local one)."),
]


def _audit_api(
    method: str, path: str, token: str, audit_url: str | None, body: object = None
) -> Any:
    import httpx

    settings = Settings()
    base = (audit_url or f"http://{settings.http_host}:{settings.audit_port}").rstrip("/")
    try:
        response = httpx.request(
            method,
            f"{base}{path}",
            json=body,
            headers={"Authorization": f"Bearer {token.strip()}"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        raise _fail(f"cannot reach the audit service at {base} ({exc}); set VS_AUDIT_URL") from None
    try:
        data = response.json()
    except ValueError:
        data = {"error": response.text[:200]}
    if response.status_code != 200:
        raise _fail(f"the audit service refused ({response.status_code}): {data.get('error')}")
    return data


@erasure_app.command("list")
def erasure_list(
    token: TokenOption,
    audit_url: AuditUrlOption = None,
    decided: Annotated[
        bool, typer.Option("--decided", help="The decided requests instead of the pending.")
    ] = False,
) -> None:
    """Print the erasure requests awaiting a decision (or the decided ones), as JSON."""
    status = "decided" if decided else "pending"
    page = _audit_api("GET", f"/audit/v1/erasures?status={status}", token, audit_url)
    typer.echo(json.dumps(page["requests"], indent=2))
    if page.get("more"):
        typer.secho("(more than these; the oldest first)", err=True)


def _decide_erasure(
    request_id: str, approve: bool, reason: str, token: str, audit_url: str | None
) -> None:
    import uuid

    try:
        wanted = uuid.UUID(request_id)
    except ValueError:
        raise _fail("the request id is a UUID, as 'erasure list' prints it") from None
    decided = _audit_api(
        "POST",
        f"/audit/v1/erasures/{wanted}/decision",
        token,
        audit_url,
        {"approve": approve, "reason": reason},
    )
    typer.echo(json.dumps(decided, indent=2))


@erasure_app.command("approve")
def erasure_approve(
    request_id: Annotated[str, typer.Argument(help="The request id 'erasure list' prints")],
    token: TokenOption,
    audit_url: AuditUrlOption = None,
    reason: Annotated[str, typer.Option(help="Why (optional; no names or numbers)")] = "",
) -> None:
    """Approve erasing the subject as a whole: every organisation's registrations end
    and its data key is shredded. Irreversible."""
    _decide_erasure(request_id, True, reason, token, audit_url)


@erasure_app.command("refuse")
def erasure_refuse(
    request_id: Annotated[str, typer.Argument(help="The request id 'erasure list' prints")],
    reason: Annotated[
        str, typer.Option(help="Why, for the partner to tell the data subject (no names)")
    ],
    token: TokenOption,
    audit_url: AuditUrlOption = None,
) -> None:
    """Refuse erasing the subject as a whole: other organisations' registrations stay."""
    _decide_erasure(request_id, False, reason, token, audit_url)


app.add_typer(issuer_app, name="issuer")

roster_app = typer.Typer(
    help="The JGT roster: wijken, teams, workers, team leads, the regie role. Every change "
    "is audited.",
    no_args_is_help=True,
)
app.add_typer(roster_app, name="roster")


Change = Callable[[Any, AuditTrail, AuditActor], Awaitable[Any]]


def _as_operator(service: str, role: str, change: Change) -> Any:
    """Run one operator action on a service's schema in one transaction, with its audit
    event in that service's outbox (its relay publishes it): who did it is the operator,
    `VS_OPERATOR` or the login name."""
    from services.notification.roster import RosterError
    from shared.db import DatabaseUnavailableError, create_pool

    settings = Settings()
    operator = os.environ.get("VS_OPERATOR") or getpass.getuser()
    trail = AuditTrail(
        service=service, instance="cli", topic=Topics(settings.topic_prefix).audit_of(service)
    )
    who = AuditActor(actor_id=operator, role=role)

    async def _run() -> Any:
        pool = await create_pool(settings.database_url, service, max_size=1)
        try:
            async with pool.acquire() as conn, conn.transaction():
                return await change(conn, trail, who)
        finally:
            await pool.close()

    try:
        return asyncio.run(_run())
    except (RosterError, DatabaseUnavailableError) as exc:
        raise _fail(str(exc)) from None


def _roster_change(change: Change) -> None:
    _as_operator("notification", "roster-admin", change)


@roster_app.command("show")
def roster_show() -> None:
    """Print the roster as stored (teams, wijken, members and whether they are active)."""
    from services.notification import roster

    async def _show(conn: Any, trail: AuditTrail, who: AuditActor) -> None:
        typer.echo(json.dumps(await roster.show(conn), indent=2))

    _roster_change(_show)


@roster_app.command("load")
def roster_load(
    file: Annotated[Path, typer.Argument(help="The roster YAML (see config/roster.yaml).")],
) -> None:
    """Make the stored roster equal to the file; people left out are deactivated."""
    from services.notification import roster

    try:
        parsed = roster.load_roster_file(file)
    except roster.RosterError as exc:
        raise _fail(str(exc)) from None

    async def _load(conn: Any, trail: AuditTrail, who: AuditActor) -> None:
        await roster.load(conn, parsed, trail, who)

    _roster_change(_load)
    typer.echo(f"roster loaded from {file}")


@roster_app.command("add-worker")
def roster_add_worker(
    team: Annotated[str, typer.Argument(help="Team id, e.g. jgt-noord")],
    worker_id: Annotated[str, typer.Argument(help="The worker's user id (the OIDC 'sub')")],
    name: Annotated[str, typer.Option(help="Display name")],
    email: Annotated[str, typer.Option(help="Work e-mail address")],
    phone: Annotated[str | None, typer.Option(help="Work phone number")] = None,
    category: Annotated[
        str, typer.Option(help="Organisation category (decides who may coordinate)")
    ] = "jeugdhulp",
) -> None:
    """Add a worker to a team."""
    from pydantic import ValidationError

    from services.notification import roster

    try:
        worker = roster.Worker(
            id=worker_id,
            name=name,
            email=email,
            phone=phone,
            category=category,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise _fail(f"not a valid worker: {problems}") from None

    async def _add(conn: Any, trail: AuditTrail, who: AuditActor) -> None:
        await roster.add_worker(conn, worker, team, trail, who)

    _roster_change(_add)
    typer.echo(f"{worker_id} added to {team}")


@roster_app.command("deactivate")
def roster_deactivate(user_id: str) -> None:
    """Deactivate a person: no new alerts or coordination; their history stays."""
    from services.notification import roster

    async def _off(conn: Any, trail: AuditTrail, who: AuditActor) -> None:
        await roster.set_active(conn, user_id, False, trail, who)

    _roster_change(_off)
    typer.echo(f"{user_id} deactivated")


@roster_app.command("activate")
def roster_activate(user_id: str) -> None:
    """Reactivate a deactivated person."""
    from services.notification import roster

    async def _on(conn: Any, trail: AuditTrail, who: AuditActor) -> None:
        await roster.set_active(conn, user_id, True, trail, who)

    _roster_change(_on)
    typer.echo(f"{user_id} activated")


@roster_app.command("remove")
def roster_remove(user_id: str) -> None:
    """Remove someone who never received an alert (anyone else: deactivate)."""
    from services.notification import roster

    async def _remove(conn: Any, trail: AuditTrail, who: AuditActor) -> None:
        await roster.remove(conn, user_id, trail, who)

    _roster_change(_remove)
    typer.echo(f"{user_id} removed")


@roster_app.command("move-wijk")
def roster_move_wijk(
    wijk: Annotated[str, typer.Argument(help="Wijk code, e.g. WK099901")],
    team: Annotated[str, typer.Argument(help="The team that serves it from now on")],
) -> None:
    """Let another team serve a wijk (new matches there go to that team)."""
    from services.notification import roster

    async def _move(conn: Any, trail: AuditTrail, who: AuditActor) -> None:
        await roster.move_wijk(conn, wijk, team, trail, who)

    _roster_change(_move)
    typer.echo(f"{wijk} is served by {team}")
