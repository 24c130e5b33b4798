"""Secrets for a local stack, a test run or one trust domain (the key ceremony)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vroegsignaal.cli.app import app
from vroegsignaal.console import fail
from vroegsignaal.provision.secrets import PARTNERS_TEMPLATE

secrets_app = typer.Typer(help="Secrets for a local stack or a test run.", no_args_is_help=True)
app.add_typer(secrets_app, name="secrets")


@secrets_app.command("init")
def secrets_init(
    directory: Annotated[Path, typer.Argument(help="Where to create the secrets.")],
    domain: Annotated[
        str | None,
        typer.Option(
            help="One trust domain's keys, for production: pseudonymiser, gateway, keystore, "
            "audit, deadletter, database or partner (docs/operator.md 'Key ceremony'). Without it: "
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
    from vroegsignaal.provision import secrets as ceremony

    if not partners.is_file():
        raise fail(f"no partner list at {partners}: pass --partners <file>")
    if domain is None:
        made = ceremony.init_secrets(
            directory, pseudonymiser_url=pseudonymiser_url, template=partners
        )
        typer.echo(f"secrets in {made.directory}")
        typer.secho(
            "LOCAL STACK ONLY: every trust domain's keys are in this one directory, both "
            "halves of the split trust together. For production make each domain's keys "
            "on its own with --domain (docs/operator.md 'Key ceremony').",
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
            listed = {p.id: p for p in ceremony.partner_list(partners).partners}
            if partner_id not in listed:
                raise ceremony.CeremonyError(f"{partner_id!r} is not in {partners}")
            ceremony.make_partner(
                out,
                {"id": partner_id, "organisation": listed[partner_id].organisation},
                pseudonymiser_url=pseudonymiser_url,
                pseudonymiser_public=ceremony.load_public(
                    pseudonymiser_public, "the pseudonymiser's public keys"
                ),
                intake_public=ceremony.load_public(intake_public, "intake's public keys"),
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
        raise fail(str(exc)) from None
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
    from vroegsignaal.provision import secrets as ceremony

    try:
        found: dict[str, ceremony.PartnerExport] = {}
        for path in exports:
            export = ceremony.load_export(path)
            if export.partner_id in found:
                raise ceremony.CeremonyError(
                    f"{path}: a second export of partner {export.partner_id!r}: hand over "
                    "one per partner, its latest"
                )
            found[export.partner_id] = export
        written = ceremony.assemble(ceremony.Secrets(directory), partners, found)
    except (ceremony.CeremonyError, OSError) as exc:
        raise fail(str(exc)) from None
    typer.echo("wrote " + ", ".join(str(w) for w in written))


@secrets_app.command("database-env")
def secrets_database_env(
    directory: Annotated[Path, typer.Argument(help="Where 'secrets init' made the secrets.")],
) -> None:
    """Print each database role's password as VS_DB_<ROLE>=... lines, for the compose
    file's .env (`>> .env`): each service logs in as its own role."""
    from vroegsignaal.provision.database import load_passwords
    from vroegsignaal.provision.secrets import Secrets

    path = Secrets(directory).database_roles
    if not path.is_file():
        raise fail(f"no {path}: run 'vroegsignaal secrets init {directory}' first")
    for role, password in sorted(load_passwords(path).items()):
        typer.echo(f"VS_DB_{role.removeprefix('vs_').upper()}={password}")
