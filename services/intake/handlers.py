"""Intake subscribers: verify -> decode -> screen + re-key -> record + outbox -> ack."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from faststream import AckPolicy
from faststream.kafka import KafkaMessage
from prometheus_client import Counter

from services.intake import store
from services.intake.domain import (
    Observation,
    PartnerRegistry,
    Rejection,
    Rekeyer,
    check_own_topic,
    open_partner_message,
    screen,
)
from shared.contracts import (
    AuditAction,
    AuditActor,
    AuditOutcome,
    Category,
    Contract,
    ErasureRequested,
    RegistrationWithdrawn,
    SignalRegistered,
    SignalWithdrawn,
    SubjectErased,
    SubjectReportRequest,
    SubjectReportRequested,
    WijkThemeCounted,
    scoped_id,
)
from shared.db import claim_message
from shared.envelope import SEALED_TO_HEADER, IntakeKeyring
from shared.keystore import KeyShredded
from shared.outbox import EVENT_TYPE_HEADER, enqueue
from shared.policy import Policy
from shared.service import ServiceRuntime
from shared.telemetry import trace_of_our_own

CONSUMER = "intake"

SIGNALS = Counter("vroegsignaal_intake_signals_total", "Partner signals by outcome", ["outcome"])


def _header(message: KafkaMessage, name: str) -> bytes | None:
    record = message.raw_message
    assert not isinstance(record, tuple)
    for key, value in record.headers or ():
        if key == name:
            return bytes(value)
    return None


def register(
    runtime: ServiceRuntime, registry: PartnerRegistry, rekey: Rekeyer, keyring: IntakeKeyring
) -> None:
    topics = [runtime.topics.partner(p.partner_id) for p in registry]
    dead_letters = runtime.dead_letters
    settings = runtime.settings
    max_age = timedelta(days=settings.max_event_age_days)

    async def reject(
        message: KafkaMessage,
        rejection: Rejection,
        object_id: str | None,
        plain: bytes | None = None,
    ) -> None:
        """Audit and dead-letter a refused partner message (`plain`: what it held once
        opened, which its dead letter keeps sealed instead of intake's ciphertext)."""
        async with runtime.pool.acquire() as conn, conn.transaction():
            await runtime.audit.record(
                conn,
                action=AuditAction.REJECT,
                outcome=AuditOutcome.DENIED,
                object_type="signal",
                object_id=object_id,
                purpose=f"intake: reject partner signal ({rejection.code})",
            )
        SIGNALS.labels("rejected").inc()
        await dead_letters.send(message, rejection.code, rejection.reason, value=plain)

    async def pass_on(
        message: KafkaMessage,
        plain: bytes,
        partner_id: str,
        request: ErasureRequested | SubjectReportRequested | None,
        forward: Callable[[uuid.UUID, str], tuple[str, Contract]],
        action: AuditAction,
        what: str,
    ) -> None:
        """A data subject's request a partner passes on: re-key it, forward it once,
        and audit it on the partner's behalf."""
        if request is None:
            return
        try:
            check_own_topic(request.partner_id, partner_id, withdrawal=False)
        except Rejection as rejection:
            await reject(message, rejection, None, plain)
            return
        subject = rekey(request.subject)
        # A request's id is random at the partner: scoping it by partner reveals nothing,
        # and lets the partner quote it to the privacy officer.
        event_id = scoped_id(partner_id, request.event_id)
        topic, event = forward(event_id, subject)
        async with runtime.pool.acquire() as conn, conn.transaction():
            if not await claim_message(conn, CONSUMER, event_id):
                return
            await enqueue(conn, topic, event)
            await runtime.audit.record(
                conn,
                action=action,
                object_type="subject",
                object_id=str(event_id),
                subjects=[subject],
                actor=AuditActor(actor_id=partner_id, role="partner", organisation=partner_id),
                purpose=f"intake: {what}, passed on by a partner",
            )

    async def on_report_request(message: KafkaMessage, plain: bytes, partner_id: str) -> None:
        await pass_on(
            message,
            plain,
            partner_id,
            await dead_letters.decode(SubjectReportRequested, message, plain),
            lambda event_id, subject: (
                runtime.topics.audit_requests,
                SubjectReportRequest(
                    event_id=event_id, request_id=event_id, subject=subject, partner_id=partner_id
                ),
            ),
            AuditAction.SEARCH,
            "a data subject's access request",
        )

    async def on_erasure(message: KafkaMessage, plain: bytes, partner_id: str) -> None:
        await pass_on(
            message,
            plain,
            partner_id,
            await dead_letters.decode(ErasureRequested, message, plain),
            lambda event_id, subject: (
                runtime.topics.accepted,
                SubjectErased(
                    event_id=event_id, request_id=event_id, subject=subject, partner_id=partner_id
                ),
            ),
            AuditAction.DELETE,
            "a data subject's erasure request (of this partner's registrations)",
        )

    async def on_withdrawal(message: KafkaMessage, plain: bytes, partner_id: str) -> None:
        withdrawn = await dead_letters.decode(SignalWithdrawn, message, plain)
        if withdrawn is None:
            return
        try:
            check_own_topic(withdrawn.partner_id, partner_id, withdrawal=True)
        except Rejection as rejection:
            await reject(message, rejection, None, plain)
            return
        registration_id = rekey.registration_id(partner_id, withdrawn.withdraws)
        withdrawal_id = rekey.withdrawal_id(partner_id, withdrawn.event_id)
        async with runtime.pool.acquire() as conn, conn.transaction():
            if not await claim_message(conn, CONSUMER, withdrawal_id):
                return
            known = await store.was_accepted(conn, registration_id)
            if known:
                subject = rekey(withdrawn.subject)
                await enqueue(
                    conn,
                    runtime.topics.accepted,
                    RegistrationWithdrawn(
                        event_id=withdrawal_id,
                        registration_id=registration_id,
                        subject=subject,
                        partner_id=partner_id,
                        reason=withdrawn.reason,
                    ),
                )
                await runtime.audit.record(
                    conn,
                    action=AuditAction.UPDATE,
                    object_type="signal",
                    object_id=str(registration_id),
                    subjects=[subject],
                    purpose=f"intake: partner withdrew its registration ({withdrawn.reason.value})",
                )
        if not known:
            await reject(
                message,
                Rejection(
                    "unknown-registration",
                    "the withdrawn registration was never accepted from this partner",
                ),
                str(registration_id),
                plain,
            )

    @runtime.broker.subscriber(
        *topics,
        group_id=runtime.group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=max(settings.max_message_bytes * 4, 1024 * 1024),
    )
    async def on_partner_message(message: KafkaMessage) -> None:
        record = message.raw_message
        assert not isinstance(record, tuple)
        # The partner's trace ends here: what intake does and passes on is in its own.
        with trace_of_our_own("intake: partner message"):
            await on_partner_signal(message)

    async def on_partner_signal(message: KafkaMessage) -> None:
        record = message.raw_message
        assert not isinstance(record, tuple)
        partner_id = runtime.topics.partner_id_of(record.topic)
        partner = registry.get(partner_id or "")
        assert partner is not None, "intake subscribes only to registered partners' topics"
        try:
            # Only intake can read what a partner sends: the seal is opened after the
            # signature (which covers the sealed bytes as sent) and before anything parses.
            plain = open_partner_message(
                partner,
                key_id=_header(message, "vs-key-id"),
                signature=_header(message, "vs-signature"),
                sealed_to=_header(message, SEALED_TO_HEADER),
                value=record.value or b"",
                keyring=keyring,
                max_bytes=settings.max_message_bytes,
            )
        except Rejection as rejection:
            if rejection.code == "oversized":
                await dead_letters.send(message, rejection.code, rejection.reason)
                SIGNALS.labels("dead-lettered").inc()
            else:
                await reject(message, rejection, None)
            return
        event_type = _header(message, EVENT_TYPE_HEADER) or b""
        if event_type == b"SignalWithdrawn":
            await on_withdrawal(message, plain, partner.partner_id)
            return
        if event_type == b"ErasureRequested":
            await on_erasure(message, plain, partner.partner_id)
            return
        if event_type == b"SubjectReportRequested":
            await on_report_request(message, plain, partner.partner_id)
            return
        signal = await dead_letters.decode(SignalRegistered, message, plain)
        if signal is None:
            SIGNALS.labels("dead-lettered").inc()
            return
        claimed_as = rekey.registration_id(partner.partner_id, signal.event_id)
        now = datetime.now(UTC)
        try:
            admission = screen(
                signal,
                topic_partner_id=partner_id,
                registry=registry,
                now=now,
                max_age=max_age,
                rekey=rekey,
            )
        except Rejection as rejection:
            # Not claimed: a corrected resend with the same event id must still get in.
            async with runtime.pool.acquire() as conn, conn.transaction():
                await store.record_rejected(conn, claimed_as, signal.partner_id, rejection.code)
            await reject(message, rejection, str(claimed_as), plain)
            return
        sealed = await runtime.keystore.seal(
            admission.subject,
            claimed_as.bytes,
            admission.personal.model_dump_json().encode(),
            create=True,
        )
        accepted = admission.accepted(claimed_as, sealed, now)
        async with runtime.pool.acquire() as conn, conn.transaction():
            if not await claim_message(conn, CONSUMER, claimed_as):
                SIGNALS.labels("duplicate").inc()
                return
            await store.record_accepted(conn, accepted)
            await enqueue(conn, runtime.topics.accepted, accepted)
            # The theme stays here, sealed under the week's key until it is counted with
            # at least k others (publish_counts): nothing in clear in this transaction
            # ties it to the registration.
            await store.remember_window(conn, admission.window)
            window = store.window_key_name(admission.window)
            observation = admission.observation(await runtime.keystore.token_key(window))
            await store.hold_observation(
                conn,
                admission.window,
                await runtime.keystore.seal(
                    window, admission.window.encode(), observation.to_bytes(), create=True
                ),
            )
            await runtime.audit.record(
                conn,
                action=AuditAction.CREATE,
                object_type="signal",
                object_id=str(claimed_as),
                subjects=[accepted.subject],
                actor=AuditActor(
                    actor_id=partner.partner_id, role="partner", organisation=partner.organisation
                ),
                purpose="intake: admit partner signal into the matching domain",
            )
        SIGNALS.labels("accepted").inc()


async def publish_counts(runtime: ServiceRuntime, policy: Policy, batch: int = 5000) -> int:
    """Count the held observations, at least k at a time (or those held too long), and
    publish the wijk x theme cells that grew by at least k, shuffled, in no trace:
    aggregates on a schedule, never one signal's theme. Cells under k are never
    published (rule 12). Returns the number of cells published."""
    k = policy.aggregates.k
    published = 0
    while True:
        held_before = datetime.now(UTC) - timedelta(
            seconds=runtime.settings.theme_counts_max_hold_seconds
        )
        async with runtime.pool.acquire() as conn, conn.transaction():
            held = await store.take_observations(conn, k, held_before, batch)
            random.SystemRandom().shuffle(held)
            for _, window, sealed in held:
                try:
                    opened = await runtime.keystore.open_sealed(
                        store.window_key_name(window), window.encode(), sealed
                    )
                except KeyShredded:
                    continue  # the week's key is gone: it can no longer be counted
                seen = Observation.from_bytes(opened)
                await store.count_child(conn, seen.cell, seen.token)
            cells = await store.take_changed_cells(conn, k, batch)
            random.SystemRandom().shuffle(cells)
            for wijk, theme, window, children in cells:
                counted = WijkThemeCounted(
                    wijk=wijk,
                    theme=Category(theme),
                    window=window,
                    distinct_children=children,
                    policy_version=policy.version,
                )
                await enqueue(conn, runtime.topics.wijk_themes, counted, traced=False)
        published += len(cells)
        if len(held) < batch and len(cells) < batch:
            return published


async def destroy_window_keys(runtime: ServiceRuntime) -> None:
    """Destroy the keys of closed trend windows: their tokens become unlinkable."""
    older = datetime.now(UTC) - timedelta(days=runtime.settings.trend_key_days)
    async with runtime.pool.acquire() as conn:
        windows = await store.closed_windows(conn, older)
    for window in windows:
        # Shredded, unlisted, shredded again. A late signal of the window holds its row
        # (remember_window) until it commits, so the unlisting waits for it and the second
        # shredding takes the key it may have made; one that comes after lists the window
        # anew, to be destroyed at a later run. A crash before the unlisting repeats all.
        name = store.window_key_name(window)
        await runtime.keystore.shred(name)
        async with runtime.pool.acquire() as conn, conn.transaction():
            await store.forget_window(conn, window)
            # Logged by the key's name: `keystore reshred` shreds it again after a restore.
            await runtime.audit.record(
                conn,
                action=AuditAction.SHRED,
                object_type="trend-window-key",
                object_id=name,
                purpose="intake: the key of a closed trend window is destroyed",
            )
        await runtime.keystore.shred(name)
