"""Intake's use cases, once a partner's message is verified, opened and decoded
(handlers.py does that): admit a signal into the matching domain, refuse one, pass on a
withdrawal or a data subject's request, release the wijk x theme counts, destroy the
keys of closed weeks. Each takes a unit of work (repository, outbox and audit in one
transaction) and the time; the rules are domain.py's."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from services.intake.domain import (
    Observation,
    Partner,
    PartnerRegistry,
    Rejection,
    Rekeyer,
    screen,
    window_key_name,
)
from services.intake.ports import Keys, UnitOfWork
from shared.contracts import (
    AuditAction,
    AuditActor,
    AuditOutcome,
    Category,
    Contract,
    RegistrationWithdrawn,
    SignalRegistered,
    SignalWithdrawn,
    Topics,
    WijkThemeCounted,
)
from shared.keystore import KeyShredded


class Admitted(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # the same registration again (a redelivery or a resend)


@dataclass(frozen=True)
class Released:
    """One pass of the counting job: observations taken off the shelf (counted, or
    dropped with their week's key), cells published."""

    taken: int
    published: int


class Intake:
    def __init__(
        self,
        registry: PartnerRegistry,
        rekey: Rekeyer,
        keys: Keys,
        topics: Topics,
        *,
        max_age: timedelta,
    ) -> None:
        self.registry = registry
        self.rekey = rekey
        self.keys = keys
        self.topics = topics
        self.max_age = max_age

    async def admit(
        self, uow: UnitOfWork, partner: Partner, signal: SignalRegistered, now: datetime
    ) -> Admitted | Rejection:
        """Screen a partner's signal (domain.screen); admitted, it is re-keyed, sealed
        and sent on, its theme held sealed under its week's key until it is counted with
        at least k others. A refusal is recorded, not claimed: a corrected resend with
        the same event id must still get in."""
        claimed_as = self.rekey.registration_id(partner.partner_id, signal.event_id)
        try:
            admission = screen(
                signal,
                topic_partner_id=partner.partner_id,
                registry=self.registry,
                now=now,
                max_age=self.max_age,
                rekey=self.rekey,
            )
        except Rejection as rejection:
            await uow.repo.record_rejected(claimed_as, signal.partner_id, rejection.code, now)
            await self.audit_refusal(uow, rejection, str(claimed_as))
            return rejection
        sealed = await self.keys.seal(
            admission.subject,
            claimed_as.bytes,
            admission.personal.model_dump_json().encode(),
            create=True,
        )
        accepted = admission.accepted(claimed_as, sealed, now)
        if not await uow.claim(claimed_as):
            return Admitted.DUPLICATE
        await uow.repo.record_accepted(accepted)
        await uow.publish(self.topics.accepted, accepted)
        # Nothing in clear in this unit of work ties the theme to the registration.
        await uow.repo.remember_window(admission.window, now)
        window = window_key_name(admission.window)
        observation = admission.observation(await self.keys.token_key(window))
        await uow.repo.hold_observation(
            admission.window,
            await self.keys.seal(
                window, admission.window.encode(), observation.to_bytes(), create=True
            ),
            now,
        )
        await uow.record(
            action=AuditAction.CREATE,
            object_type="signal",
            object_id=str(claimed_as),
            subjects=[accepted.subject],
            actor=AuditActor(
                actor_id=partner.partner_id, role="partner", organisation=partner.organisation
            ),
            purpose="intake: admit partner signal into the matching domain",
        )
        return Admitted.ACCEPTED

    async def audit_refusal(
        self, uow: UnitOfWork, rejection: Rejection, object_id: str | None
    ) -> None:
        """A refused partner message, in the log (the caller dead-letters it)."""
        await uow.record(
            action=AuditAction.REJECT,
            outcome=AuditOutcome.DENIED,
            object_type="signal",
            object_id=object_id,
            purpose=f"intake: reject partner signal ({rejection.code})",
        )

    async def withdraw(
        self, uow: UnitOfWork, partner_id: str, withdrawn: SignalWithdrawn
    ) -> Rejection | None:
        """Rule 5: a partner withdraws a registration it made; matching hears of it under
        the registration's own id. One it never made is refused."""
        registration_id = self.rekey.registration_id(partner_id, withdrawn.withdraws)
        withdrawal_id = self.rekey.withdrawal_id(partner_id, withdrawn.event_id)
        if not await uow.repo.was_accepted(registration_id):
            # Not claimed: its redelivery is refused (and dead-lettered) again.
            rejection = Rejection(
                "unknown-registration",
                "the withdrawn registration was never accepted from this partner",
            )
            await self.audit_refusal(uow, rejection, str(registration_id))
            return rejection
        if not await uow.claim(withdrawal_id):
            return None
        subject = self.rekey(withdrawn.subject)
        await uow.publish(
            self.topics.accepted,
            RegistrationWithdrawn(
                event_id=withdrawal_id,
                registration_id=registration_id,
                subject=subject,
                partner_id=partner_id,
                reason=withdrawn.reason,
            ),
        )
        await uow.record(
            action=AuditAction.UPDATE,
            object_type="signal",
            object_id=str(registration_id),
            subjects=[subject],
            purpose=f"intake: partner withdrew its registration ({withdrawn.reason.value})",
        )
        return None

    async def pass_on(
        self,
        uow: UnitOfWork,
        partner_id: str,
        event_id: uuid.UUID,
        subject: str,
        forward: tuple[str, Contract],
        action: AuditAction,
        what: str,
    ) -> bool:
        """A data subject's request a partner passes on (re-keyed by the caller): sent on
        once, and audited on the partner's behalf. False when it was passed on before."""
        if not await uow.claim(event_id):
            return False
        await uow.publish(*forward)
        await uow.record(
            action=action,
            object_type="subject",
            object_id=str(event_id),
            subjects=[subject],
            actor=AuditActor(actor_id=partner_id, role="partner", organisation=partner_id),
            purpose=f"intake: {what}, passed on by a partner",
        )
        return True

    async def release_counts(
        self, uow: UnitOfWork, k: int, held_before: datetime, policy_version: str, batch: int
    ) -> Released:
        """Count the held observations, at least k at a time (or those held too long),
        and publish the cells that grew by at least k, shuffled, in no trace: aggregates
        on a schedule, never one signal's theme. Cells under k are never published
        (rule 12)."""
        held = await uow.repo.take_observations(k, held_before, batch)
        random.SystemRandom().shuffle(held)
        for h in held:
            try:
                opened = await self.keys.open_sealed(
                    window_key_name(h.window), h.window.encode(), h.sealed
                )
            except KeyShredded:
                continue  # the week's key is gone: it can no longer be counted
            seen = Observation.from_bytes(opened)
            await uow.repo.count_child(seen.cell, seen.token)
        cells = await uow.repo.take_changed_cells(k, batch)
        random.SystemRandom().shuffle(cells)
        for c in cells:
            await uow.publish(
                self.topics.wijk_themes,
                WijkThemeCounted(
                    wijk=c.wijk,
                    theme=Category(c.theme),
                    window=c.window,
                    distinct_children=c.children,
                    policy_version=policy_version,
                ),
                traced=False,
            )
        return Released(len(held), len(cells))

    async def destroy_window_keys(
        self, units: Callable[[], AbstractAsyncContextManager[UnitOfWork]], older: datetime
    ) -> int:
        """Destroy the keys of closed trend windows: their tokens become unlinkable.
        Shredded, unlisted, shredded again: a late signal of the window holds its row
        (remember_window) until it commits, so the unlisting waits for it and the second
        shredding takes the key it may have made; one that comes after lists the window
        anew, to be destroyed at a later run. A crash before the unlisting repeats all."""
        async with units() as uow:
            windows = await uow.repo.closed_windows(older)
        for window in windows:
            name = window_key_name(window)
            await self.keys.shred(name)
            async with units() as uow:
                await uow.repo.forget_window(window)
                # Logged by the key's name: `keystore reshred` shreds it again after a
                # restore.
                await uow.record(
                    action=AuditAction.SHRED,
                    object_type="trend-window-key",
                    object_id=name,
                    purpose="intake: the key of a closed trend window is destroyed",
                )
            await self.keys.shred(name)
        return len(windows)
