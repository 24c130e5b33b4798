"""Composition root of the intake gateway."""

from __future__ import annotations

from pathlib import Path

from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.types import Scope

from services.intake import handlers, store
from services.intake.domain import PartnerRegistry, PartnerRegistryError, Rekeyer
from shared.envelope import IntakeKeyring
from shared.policy import load_policy
from shared.service import Routes, ServiceRuntime, build_service, json_response
from shared.settings import Settings

NAME = "intake"


def load_partners(settings: Settings) -> PartnerRegistry:
    path = settings.partners_file
    return PartnerRegistry.parse(path.read_text(), source=str(path))


def load_rekeyer(settings: Settings) -> Rekeyer:
    path = settings.gateway_keys_file
    if path is None:
        raise PartnerRegistryError(
            "VS_GATEWAY_KEYS_FILE is not set: the gateway needs its re-keying key "
            "('vroegsignaal secrets init' makes one for a local stack)"
        )
    return Rekeyer.parse(path.read_text(), source=str(path))


def load_keyring(settings: Settings) -> IntakeKeyring:
    if settings.intake_keys_file is None:
        raise PartnerRegistryError(
            "VS_INTAKE_KEYS_FILE is not set: intake needs the private keys partners seal "
            "their events to ('vroegsignaal secrets init' makes one for a local stack)"
        )
    return IntakeKeyring.load(settings.intake_keys_file)


def create_app(settings: Settings) -> AsgiFastStream:
    registry = load_partners(settings)
    rekey = load_rekeyer(settings)
    keyring = load_keyring(settings)
    # For k: no wijk x theme cell of fewer children leaves intake.
    policy = load_policy(settings.policy_file)

    def register(runtime: ServiceRuntime) -> Routes:
        entry = handlers.register(runtime, registry, rekey, keyring)
        runtime.every(3600, "destroying trend window keys", entry.destroy_window_keys)
        runtime.every(
            settings.theme_counts_release_seconds,
            "publishing wijk x theme counts",
            lambda: entry.publish_counts(policy),
        )

        @get(description="How many signals were admitted and rejected (counts only)")
        async def summary(scope: Scope) -> AsgiResponse:
            async with runtime.pool.acquire() as conn:
                counts = await store.PostgresRepository(conn).counts()
            return json_response({"partners": len(registry), **counts})

        return [("/signals/summary", summary)]

    app, _ = build_service(NAME, Path(__file__).parent, settings, register, uses_keystore=True)
    return app
