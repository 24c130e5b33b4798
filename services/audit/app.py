"""Composition root of the audit service: the log, its tree heads and its proofs."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

from faststream.asgi import AsgiResponse, get
from faststream.asgi.types import ASGIApp, Scope

from services.audit import handlers, store
from services.audit.search import build_web
from shared.auth import TokenVerifier
from shared.policy import load_policy
from shared.service import Routes, ServiceRuntime, build_service, json_response
from shared.settings import Settings
from shared.webapp import Combined

NAME = "audit"


def _ints(scope: Scope, *names: str) -> list[int] | None:
    query = parse_qs(scope.get("query_string", b"").decode())
    try:
        return [int((query.get(n) or [""])[0]) for n in names]
    except ValueError:
        return None


def create_app(settings: Settings) -> ASGIApp:
    key_id, key = handlers.load_signing_key(settings.audit_signing_key_file)
    policy = load_policy(settings.policy_file)
    public_key = key.public_key()

    def register(runtime: ServiceRuntime) -> Routes:
        handlers.register(runtime)
        runtime.every(
            settings.audit_head_interval_seconds,
            "signing a tree head",
            lambda: handlers.sign_head(runtime, key_id, key),
        )
        runtime.every(
            settings.retention_interval_seconds,
            "audit retention",
            lambda: handlers.prune(
                runtime.pool, runtime.audit, key_id, key, policy.audit.retention_years
            ),
        )

        @get(description="Entries per source system, action and outcome (counts only)")
        async def summary(scope: Scope) -> AsgiResponse:
            async with runtime.pool.acquire() as conn:
                return json_response({"entries": await store.summary(conn)})

        @get(description="The latest signed tree head")
        async def tree_head(scope: Scope) -> AsgiResponse:
            async with runtime.pool.acquire() as conn:
                head = await store.latest_head(conn)
            if head is None:
                return json_response({"error": "no tree head signed yet"}, 404)
            return json_response(
                {
                    "size": head.size,
                    "root": head.root.hex(),
                    "signed_at": head.signed_at.isoformat(),
                    "key_id": head.key_id,
                    "signature": head.signature.hex(),
                }
            )

        @get(description="The public key that verifies tree heads (Ed25519, hex)")
        async def public(scope: Scope) -> AsgiResponse:
            from cryptography.hazmat.primitives import serialization

            raw = public_key.public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            return json_response({"key_id": key_id, "public_key": raw.hex()})

        @get(description="Inclusion proof: ?index=<leaf>&size=<tree size>")
        async def inclusion(scope: Scope) -> AsgiResponse:
            values = _ints(scope, "index", "size")
            if values is None:
                return json_response({"error": "give index and size as integers"}, 400)
            index, size = values
            async with runtime.pool.acquire() as conn:
                if not 0 <= index < size <= await store.size(conn):
                    return json_response({"error": "index must lie in a tree that exists"}, 400)
                proof = await store.inclusion(conn, index, size)
                leaf = await store.leaf_hash_at(conn, index)
            # Hashes only: the entry itself is for the privacy officer (search, export).
            return json_response(
                {
                    "index": index,
                    "size": size,
                    "leaf_hash": leaf.hex() if leaf else None,
                    "proof": [p.hex() for p in proof],
                }
            )

        @get(description="Consistency proof: ?first=<older size>&second=<newer size>")
        async def consistency(scope: Scope) -> AsgiResponse:
            values = _ints(scope, "first", "second")
            if values is None:
                return json_response({"error": "give first and second as integers"}, 400)
            first, second = values
            async with runtime.pool.acquire() as conn:
                if not 0 < first <= second <= await store.size(conn):
                    return json_response({"error": "0 < first <= second <= tree size"}, 400)
                proof = await store.consistency(conn, first, second)
            return json_response(
                {"first": first, "second": second, "proof": [p.hex() for p in proof]}
            )

        return [
            ("/audit/summary", summary),
            ("/audit/v1/tree-head", tree_head),
            ("/audit/v1/public-key", public),
            ("/audit/v1/inclusion", inclusion),
            ("/audit/v1/consistency", consistency),
        ]

    verifier = TokenVerifier(
        settings.oidc_issuer, settings.oidc_audience, user_claim=settings.oidc_user_claim
    )
    service, runtime = build_service(NAME, Path(__file__).parent, settings, register)
    runtime.on_close(verifier.aclose)
    return Combined(
        service,
        build_web(runtime, verifier, public_key),
        (
            "/audit/ui",
            "/audit/v1/search",
            "/audit/v1/me",
            "/audit/v1/erasures",
            "/audit/v1/integrity",
            "/audit/v1/verifications",
            "/audit/v1/reports",
            "/audit/v1/export",
        ),
    )
