"""`vroegsignaal partner`: the commands a partner organisation's admin runs. What they
read is in Dutch unless they ask for English (--language en, or VS_LANGUAGE=en before
the command for its help texts); the catalogue is shared/locale."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shared.i18n import AMSTERDAM, LANGUAGES, UnknownLanguage, _, choose, moment
from shared.settings import Settings
from vroegsignaal.console import fail

if TYPE_CHECKING:
    from vroegsignaal.partner.producer import Summary

partner_app = typer.Typer(
    help=_("The partner producer: run at a partner organisation."), no_args_is_help=True
)

ConfigOption = Annotated[
    Path, typer.Option(envvar="VS_PARTNER_CONFIG", help=_("The partner's configuration."))
]
ChildFile = Annotated[Path, typer.Argument(help=_("A file with the child_bsn of each child"))]


@partner_app.callback()
def language(
    chosen: Annotated[
        str | None,
        typer.Option(
            "--language",
            envvar="VS_LANGUAGE",
            help=_("The language of what this command says: {choices}.").format(
                choices=", ".join(LANGUAGES)
            ),
        ),
    ] = None,
) -> None:
    try:
        choose(chosen or "")
    except UnknownLanguage:
        choose("")  # said in the partner's default language, Dutch, not the operators'
        raise fail(str(UnknownLanguage(str(chosen)))) from None


def _as_partner(config: Path, action: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run a partner action; a broken configuration, an unreachable or refusing
    pseudonymiser or an unreadable file ends in one message, not a stack trace."""
    from aiokafka.errors import KafkaError

    from vroegsignaal.partner.config import PartnerConfigError
    from vroegsignaal.partner.pseudonymise import PseudonymisationError
    from vroegsignaal.partner.send import with_producer

    settings = Settings()
    try:
        return asyncio.run(with_producer(config, settings, action))
    except (PartnerConfigError, PseudonymisationError, OSError) as exc:
        raise fail(str(exc)) from None
    except KafkaError as exc:
        raise fail(
            _("cannot reach Kafka at {servers} ({problem}); check KAFKA_BOOTSTRAP_SERVERS").format(
                servers=settings.kafka_bootstrap_servers, problem=exc
            )
        ) from None


def _today() -> date:
    """Today where the partner is: a row of this morning is not 'in the future' before
    02:00 Amsterdam time, nor a youth's 23rd-birthday month a day early at a month end."""
    return datetime.now(AMSTERDAM).date()


@partner_app.command(
    "send",
    help=_("Validate, pseudonymise, sign and send a partner's export. No BSN leaves this process."),
)
def partner_send(
    export: Annotated[Path, typer.Argument(help=_("The partner's export: .csv or .jsonl"))],
    config: ConfigOption,
    rejects: Annotated[
        Path | None, typer.Option(help=_("Where to write rejected rows (line, reason)."))
    ] = None,
) -> None:
    from vroegsignaal.partner.producer import write_rejects
    from vroegsignaal.partner.send import send_with_progress

    summary = _as_partner(config, send_with_progress(export, _today()))
    rejects_path = rejects or export.with_suffix(export.suffix + ".rejects.csv")
    if summary.rejects:
        write_rejects(rejects_path, summary.rejects)
    typer.echo(
        _(
            "sent {sent}, rejected {rejected}, duplicates {duplicates}, already sent {earlier}"
        ).format(
            sent=summary.sent,
            rejected=summary.rejected,
            duplicates=summary.duplicates,
            earlier=summary.already_sent,
        )
    )
    if summary.rejects:
        typer.echo(_("rejected rows with their reasons in {path}").format(path=rejects_path))


@partner_app.command(
    "withdraw", help=_("Withdraw the registrations that rows of an earlier export made.")
)
def partner_withdraw(
    export: Annotated[Path, typer.Argument(help=_("The rows whose registrations to withdraw"))],
    config: ConfigOption,
    reason: Annotated[str, typer.Option(help=_("resolved (archived) or unjustified (erased)"))],
) -> None:
    from shared.contracts import WithdrawalReason

    try:
        why = WithdrawalReason(reason)
    except ValueError:
        raise fail(_("--reason must be 'resolved' or 'unjustified'")) from None
    summary = _as_partner(config, lambda p: p.withdraw_file(export, why, today=_today()))
    _tell(_("withdrawn {sent}, rejected {rejected}"), summary)


def _tell(counts: str, summary: Summary) -> None:
    """The request ids a summary holds (to quote to the privacy officer), then its counts."""
    for request_id in summary.request_ids:
        typer.echo(_("request {id}").format(id=request_id))
    typer.echo(counts.format(sent=summary.sent, rejected=summary.rejected))


@partner_app.command(
    "erase",
    help=_(
        "Pass on data subjects' requests for erasure: this organisation's registrations of "
        "them end at once; where other organisations' remain, erasing the child as a whole "
        "is the privacy officer's decision. Prints the request ids to quote to the privacy "
        "officer."
    ),
)
def partner_erase(export: ChildFile, config: ConfigOption) -> None:
    summary = _as_partner(config, lambda p: p.erase_file(export))
    _tell(_("erasure requested for {sent}, rejected {rejected}"), summary)


@partner_app.command(
    "subject-report",
    help=_(
        "Pass on data subjects' access requests; prints the request ids for the privacy "
        "officer, who reads the reports on the privacy officer's page."
    ),
)
def partner_subject_report(export: ChildFile, config: ConfigOption) -> None:
    summary = _as_partner(config, lambda p: p.request_reports(export))
    _tell(_("access requested for {sent}, rejected {rejected}"), summary)


@partner_app.command(
    "lookup",
    help=_(
        "Which export and line a registration came from, from this partner's receipts (kept "
        "by 'partner send' beside the configuration; no BSN in them)."
    ),
)
def partner_lookup(
    registration: Annotated[
        str, typer.Argument(help=_("The registration number the inbox shows your worker"))
    ],
    config: ConfigOption,
) -> None:
    from vroegsignaal.partner.config import PartnerConfig, PartnerConfigError
    from vroegsignaal.partner.producer import Receipts

    try:
        number = uuid.UUID(registration.strip())
    except ValueError:
        raise fail(
            _(
                "{given} is not a registration number; copy it from the inbox "
                "(it looks like 3f2c1e9a-...)"
            ).format(given=repr(registration))
        ) from None
    try:
        partner_config = PartnerConfig.load(config)
    except PartnerConfigError as exc:
        raise fail(str(exc)) from None
    receipts = Receipts(partner_config.receipts_file, bytes.fromhex(partner_config.id_key))
    found = receipts.find(number)
    if not found:
        raise fail(
            _(
                "registration {number} is not in {path}: it was not sent with this "
                "configuration's receipts (another machine, or a receipts file moved away)"
            ).format(number=number, path=receipts.path)
        )
    for r in found:
        typer.echo(
            _(
                "registration {number}: {export} line {line}, registered {registered}, "
                "reference {reference}, row hash {row}"
            ).format(
                number=number,
                export=r["export"],
                line=r["line"],
                registered=moment(datetime.fromisoformat(r["registered_at"])),
                reference=r["reference"] or _("(none)"),
                row=r["row"],
            )
        )


@partner_app.command(
    "keygen",
    help=_(
        "Make an Ed25519 signing key (the private half for the partner's configuration, the "
        "public half for the municipality's partners file) and the partner's id key."
    ),
)
def partner_keygen() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    typer.echo(
        _("signing_key (keep secret, partner configuration): {key}").format(key=private.hex())
    )
    typer.echo(
        _("id_key (keep secret, partner configuration): {key}").format(key=secrets.token_hex(32))
    )
    typer.echo(_("public key (municipality's partners file): {key}").format(key=public.hex()))


@partner_app.command(
    "desk",
    help=_(
        "Run the registration desk: a web page (/registratie/) on which the partners' workers "
        "register a concern; the BSN is blinded in their browser and never reaches the desk."
    ),
)
def partner_desk(
    desk_config: Annotated[
        Path,
        typer.Option("--desk-config", envvar="VS_DESK_CONFIG", help=_("The desk's configuration.")),
    ],
) -> None:
    import logging

    import uvicorn

    from vroegsignaal.partner.desk.app import create_app
    from vroegsignaal.partner.desk.config import DeskConfig, DeskConfigError

    settings = Settings()
    if not settings.desk_database_url:
        raise fail(
            _(
                "VS_DESK_DATABASE_URL is not set: the desk keeps its workers' registrations in "
                "a database of its own (a login that owns the schema 'desk')"
            )
        )
    try:
        config = DeskConfig.load(desk_config)
        config.partner_configs()
    except DeskConfigError as exc:
        raise fail(str(exc)) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    uvicorn.run(
        create_app(settings, config),
        host=settings.http_host,
        port=settings.desk_port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=int(settings.graceful_timeout_seconds),
    )
