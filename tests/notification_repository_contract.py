"""One contract for notification's repository (services/notification/ports.
NotificationRepository), run against each implementation: in memory
(tests/unit/test_notification_repository.py) and on PostgreSQL
(tests/integration/test_notification_repository.py).

A subclass provides two fixtures: `repo`, a fresh, empty repository, and `rows`, the
same implementation's `Rows`: what other parts of the service write and the repository
only reads (the roster, the inbox's acknowledgements, contacts and completed tasks, the
delivery loop's digests), set; and what the repository writes that only they read
(digest items, deliveries, trend cells, what an alert still says), read.

Not here: `tell_live` (PostgreSQL's NOTIFY reaches listeners at commit, and every test
is rolled back) and the locks (one connection cannot contend with itself)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from services.notification.domain import (
    About,
    Alert,
    Part,
    TeamWorker,
    alert_id,
    no_contact_overdue,
    unacknowledged_overdue,
)
from services.notification.ports import KnownMatch, LateAlert, NotificationRepository, QuietMatch
from shared.contracts import MatchContact, MatchKind, OrganisationCategory, WorkerContact
from tests.factories import pseudonym, worker

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LATER = datetime(2100, 1, 1, tzinfo=UTC)
WIJK = "WK000001"
TEAM = "team-a"
FAMILY = "f" * 64
ANNA, BRAM, CARLA, DIRK = (worker(w) for w in ("anna", "bram", "carla", "dirk"))


class Rows(Protocol):
    # --- the roster -------------------------------------------------------------------

    async def team(self, team_id: str, *wijken: str) -> None: ...

    async def member(
        self,
        who: WorkerContact,
        role: str,
        team_id: str | None = None,
        *,
        category: OrganisationCategory = OrganisationCategory.JEUGDHULP,
        active: bool = True,
    ) -> None: ...

    async def set_active(self, user_id: str, active: bool) -> None: ...

    # --- the inbox and the delivery loop ----------------------------------------------

    async def issued(self, alert_id: uuid.UUID, at: datetime) -> None:
        """Date an alert back (PostgreSQL stamps it with its transaction's now())."""

    async def acknowledge(self, alert_id: uuid.UUID, at: datetime) -> None: ...

    async def record_contact(
        self, match_id: uuid.UUID, worker_id: str, with_worker: str, at: datetime
    ) -> None: ...

    async def complete_task(
        self, match_id: uuid.UUID, registration_id: uuid.UUID, at: datetime
    ) -> None: ...

    async def digest(self, recipient: WorkerContact, created_at: datetime, state: str) -> None:
        """A digest of all that waits for the recipient, its e-mail in `state`."""

    # --- what only others read ----------------------------------------------------------

    async def alert(self, alert_id: uuid.UUID) -> tuple[list[str], list[str]] | None:
        """An alert's subjects and the ids of its contacts (sorted); None when gone."""

    async def contacts_made(self, match_id: uuid.UUID) -> set[tuple[str, str]]: ...

    async def yours(self, match_id: uuid.UUID, registration_id: uuid.UUID) -> str | None: ...

    async def digest_items(self, recipient_id: str) -> set[tuple[uuid.UUID, bool, bool]]:
        """(alert, opens a case new to the recipient, taken into a digest)."""

    async def overdue_items(self) -> set[tuple[uuid.UUID, str]]:
        """(item, recipient)."""

    async def deliveries(self) -> set[tuple[uuid.UUID | None, str, str]]:
        """(alert, channel, target); a digest's e-mail has no alert."""

    async def trend(self, wijk: str, theme: str, window: str) -> tuple[int, bool] | None: ...


async def kept_match(
    repo: NotificationRepository,
    *,
    kind: MatchKind = MatchKind.PERSON,
    subject: str | None = None,
    family: str | None = None,
    team_id: str | None = TEAM,
    coordinator_id: str | None = None,
    raised_at: datetime = T0,
) -> uuid.UUID:
    match_id = uuid.uuid4()
    assert await repo.add_match(
        match_id=match_id,
        kind=kind.value,
        subject=subject,
        family=family,
        wijk=WIJK,
        team_id=team_id,
        coordinator_id=coordinator_id,
        raised_at=raised_at,
    )
    return match_id


def party(subject: str, who: WorkerContact, organisation: str = "School") -> MatchContact:
    return MatchContact(
        registration_id=uuid.uuid4(),
        subject=subject,
        worker=who,
        organisation=organisation,
        organisation_category=OrganisationCategory.ONDERWIJS,
    )


async def told(
    repo: NotificationRepository,
    match_id: uuid.UUID | None,
    recipient: WorkerContact,
    subjects: Sequence[str],
    *,
    part: Part = Part.REGISTRANT,
    contacts: Sequence[WorkerContact] = (),
    occasion: str = "raised",
) -> Alert:
    """An alert stored as the use cases store it; a notice (no match) each time anew."""
    if match_id is None:
        occasion = f"earlier:{uuid.uuid4()}"
    alert = Alert(
        alert_id(match_id, recipient.worker_id, MatchKind.PERSON, occasion),
        match_id,
        MatchKind.PERSON,
        occasion,
        part,
        recipient,
        tuple(contacts),
        None,
        "message",
    )
    assert await repo.add_alert(alert, subjects)
    return alert


async def task(repo: NotificationRepository, match_id: uuid.UUID, contact: MatchContact) -> bool:
    return await repo.add_task(
        match_id=match_id,
        registration_id=contact.registration_id,
        worker_id=contact.worker.worker_id,
        addressee="youth and parents",
    )


class NotificationRepositoryContract:
    # --- matches and their parties ----------------------------------------------------

    async def test_a_match_is_kept_once(self, repo: NotificationRepository) -> None:
        match_id = uuid.uuid4()
        for wijk, kept in ((WIJK, True), ("WK000002", False)):
            assert (
                await repo.add_match(
                    match_id=match_id,
                    kind="person",
                    subject=pseudonym(),
                    family=None,
                    wijk=wijk,
                    team_id=TEAM,
                    coordinator_id="anna",
                    raised_at=T0,
                )
                is kept
            )
        assert await repo.match(match_id) == KnownMatch(
            match_id, MatchKind.PERSON, None, WIJK, TEAM, "anna"
        )
        assert await repo.match(uuid.uuid4()) is None

    async def test_each_worker_is_a_party_once_and_keeps_their_first_view(
        self, repo: NotificationRepository, rows: Rows
    ) -> None:
        child = pseudonym()
        match_id = await kept_match(repo, subject=child)
        bram_1, bram_2, anna = (
            party(child, BRAM, "JGZ"),
            party(child, BRAM, "JGZ"),
            party(child, ANNA),
        )
        await repo.add_parties(match_id, [bram_1, bram_2, anna], {bram_1.registration_id: "v1.a"})
        # The same parties again, from a later event that brings each its view.
        await repo.add_parties(
            match_id, [bram_1, anna], {bram_1.registration_id: "v1.b", anna.registration_id: "v1.c"}
        )
        assert await repo.parties(match_id) == [(ANNA, "School"), (BRAM, "JGZ")]
        assert await rows.yours(match_id, bram_1.registration_id) == "v1.a"
        assert await rows.yours(match_id, bram_2.registration_id) is None
        assert await rows.yours(match_id, anna.registration_id) == "v1.c"
        assert await repo.parties(uuid.uuid4()) == []

    async def test_about_names_each_workers_own_children(
        self, repo: NotificationRepository
    ) -> None:
        child, sibling, other = pseudonym(), pseudonym(), pseudonym()
        family = await kept_match(repo, kind=MatchKind.FAMILY, family=FAMILY)
        await repo.add_parties(
            family, [party(child, ANNA), party(sibling, BRAM, "JGZ"), party(child, BRAM, "JGZ")]
        )
        person = await kept_match(repo, subject=other)
        await repo.add_parties(person, [party(other, CARLA)])
        assert await repo.about(family) == About(
            tuple(sorted([child, sibling])),
            {"anna": (child,), "bram": tuple(sorted([child, sibling]))},
        )
        assert await repo.about(uuid.uuid4()) == About()
        assert await repo.about_many([family, person, uuid.uuid4()]) == sorted(
            [child, sibling, other]
        )
        assert await repo.about_many([]) == []

    async def test_a_party_that_leaves_takes_its_open_task_only(
        self, repo: NotificationRepository, rows: Rows
    ) -> None:
        child = pseudonym()
        match_id = await kept_match(repo, subject=child)
        leaves, stays, done = party(child, ANNA), party(child, BRAM), party(child, CARLA)
        await repo.add_parties(match_id, [leaves, stays, done])
        for p in (leaves, stays, done):
            assert await task(repo, match_id, p)
        await rows.complete_task(match_id, done.registration_id, T0)
        left = [leaves.registration_id, done.registration_id, uuid.uuid4()]
        assert await repo.drop_parties(match_id, left) == 2
        assert await repo.drop_parties(match_id, left) == 0
        assert await repo.parties(match_id) == [(BRAM, "School")]
        # The open task went with its party: it could be set again. The done one stays.
        assert await task(repo, match_id, leaves)
        assert not await task(repo, match_id, done)
        assert not await task(repo, match_id, stays)

    async def test_a_task_is_set_once_per_match_and_registration(
        self, repo: NotificationRepository
    ) -> None:
        child = pseudonym()
        match_id, other = await kept_match(repo, subject=child), await kept_match(repo)
        p = party(child, ANNA)
        assert await task(repo, match_id, p)
        assert not await task(repo, match_id, p)
        assert await task(repo, other, p)
        assert await task(repo, match_id, party(child, ANNA))

    async def test_a_match_closes_once(self, repo: NotificationRepository) -> None:
        match_id = await kept_match(repo)
        assert await repo.close_match(match_id, T0 + timedelta(days=1))
        assert not await repo.close_match(match_id, T0 + timedelta(days=9))
        assert not await repo.close_match(uuid.uuid4(), T0)
        # It keeps the moment it closed first.
        assert await repo.expired(T0 + timedelta(days=1)) == ([], 0)
        assert await repo.expired(T0 + timedelta(days=2)) == ([match_id], 0)
        assert await repo.without_contact(LATER) == []
        assert await repo.orphaned() == []

    async def test_a_match_is_reassigned(self, repo: NotificationRepository) -> None:
        match_id = await kept_match(repo, coordinator_id="anna")
        await repo.reassign(match_id, wijk="WK000002", team_id="team-b", coordinator_id=None)
        assert await repo.match(match_id) == KnownMatch(
            match_id, MatchKind.PERSON, None, "WK000002", "team-b", None
        )
        missing = uuid.uuid4()
        await repo.reassign(missing, wijk="WK000002", team_id=None, coordinator_id=None)
        assert await repo.match(missing) is None

    async def test_a_family_keeps_the_coordinator_of_its_oldest_open_match(
        self, repo: NotificationRepository
    ) -> None:
        def at(hours: int) -> datetime:
            return T0 + timedelta(hours=hours)

        ended = await kept_match(repo, family=FAMILY, coordinator_id="old", raised_at=at(0))
        await repo.close_match(ended, at(5))
        await kept_match(repo, family=FAMILY, raised_at=at(1))
        await kept_match(repo, family=FAMILY, coordinator_id="bram", raised_at=at(3))
        await kept_match(repo, family=FAMILY, coordinator_id="anna", raised_at=at(2))
        await kept_match(repo, family="e" * 64, coordinator_id="carla", raised_at=at(-9))
        assert await repo.family_coordinator(FAMILY) == "anna"
        assert await repo.family_coordinator("d" * 64) is None
        assert await repo.family_coordinator(None) is None

    async def test_orphaned_matches_have_a_team_and_no_active_coordinator(
        self, repo: NotificationRepository, rows: Rows
    ) -> None:
        await rows.team(TEAM, WIJK)
        await rows.member(ANNA, "worker", TEAM)
        await rows.member(BRAM, "worker", TEAM, active=False)
        unassigned = await kept_match(repo, raised_at=T0 + timedelta(hours=2))
        left = await kept_match(repo, family=FAMILY, coordinator_id="bram", raised_at=T0)
        await kept_match(repo, coordinator_id="anna")
        await kept_match(repo, team_id=None)  # a wijk without a team: nobody to choose from
        closed = await kept_match(repo)
        await repo.close_match(closed, T0)
        assert await repo.orphaned() == [
            KnownMatch(left, MatchKind.PERSON, FAMILY, WIJK, TEAM, "bram"),
            KnownMatch(unassigned, MatchKind.PERSON, None, WIJK, TEAM, None),
        ]
        await rows.set_active("bram", True)
        assert [m.match_id for m in await repo.orphaned()] == [unassigned]

    # --- events that overtook their match, and forgetting ------------------------------

    async def test_parked_events_are_taken_once_in_arrival_order(
        self, repo: NotificationRepository
    ) -> None:
        match_id, other = uuid.uuid4(), uuid.uuid4()
        first = uuid.uuid4()
        await repo.park(first, match_id, "MatchLeft", b"1")
        await repo.park(uuid.uuid4(), other, "MatchDissolved", b"x")
        await repo.park(uuid.uuid4(), match_id, "CoordinationTransferred", b"2")
        await repo.park(first, match_id, "MatchLeft", b"again")  # redelivered
        assert await repo.parked(match_id) == [
            ("MatchLeft", b"1"),
            ("CoordinationTransferred", b"2"),
        ]
        assert await repo.parked(match_id) == []
        assert await repo.parked(other) == [("MatchDissolved", b"x")]

    async def test_a_forgotten_match_id_drops_what_waited_for_it(
        self, repo: NotificationRepository
    ) -> None:
        match_id, other = uuid.uuid4(), uuid.uuid4()
        await repo.park(uuid.uuid4(), match_id, "MatchLeft", b"1")
        await repo.park(uuid.uuid4(), other, "MatchLeft", b"2")
        assert not await repo.forgotten(match_id)
        await repo.forget_match_id(match_id)
        await repo.forget_match_id(match_id)
        assert await repo.forgotten(match_id)
        assert not await repo.forgotten(other)
        assert await repo.parked(match_id) == []
        assert await repo.parked(other) == [("MatchLeft", b"2")]

    async def test_the_matches_of_a_subject(self, repo: NotificationRepository) -> None:
        child, sibling = pseudonym(), pseudonym()
        person = await kept_match(repo, subject=child)
        family = await kept_match(repo, kind=MatchKind.FAMILY, family=FAMILY)
        await repo.add_parties(family, [party(child, ANNA), party(sibling, BRAM)])
        await repo.add_parties(person, [party(child, ANNA), party(child, CARLA)])
        await kept_match(repo, subject=sibling)
        assert await repo.matches_of(child) == sorted([person, family])
        assert await repo.matches_of(pseudonym()) == []

    async def test_an_erased_subjects_person_matches_and_notices_go(
        self, repo: NotificationRepository, rows: Rows
    ) -> None:
        child, other = pseudonym(), pseudonym()
        match_id = await kept_match(repo, subject=child)
        mine, theirs = party(child, ANNA), party(child, BRAM, "JGZ")
        await repo.add_parties(match_id, [mine, theirs])
        await task(repo, match_id, mine)
        await rows.record_contact(match_id, "anna", "bram", T0)
        to_anna = await told(repo, match_id, ANNA, [child], contacts=[BRAM])
        await told(repo, match_id, BRAM, [child], contacts=[ANNA])
        await repo.add_delivery(to_anna.alert_id, "webhook", "school")
        notice = await told(repo, None, ANNA, [child])
        await repo.queue_for_digest(notice)
        kept = await told(repo, None, ANNA, [other])
        assert await repo.forget_subject(child, [mine.registration_id]) == (1, 3)
        assert await repo.match(match_id) is None
        assert await repo.forgotten(match_id)
        assert await repo.matches_of(child) == []
        assert await repo.parties(match_id) == []
        assert await rows.contacts_made(match_id) == set()
        for gone in (to_anna, notice):
            assert await rows.alert(gone.alert_id) is None
        assert await rows.alert(kept.alert_id) == ([other], [])
        assert await rows.deliveries() == set()
        assert await rows.digest_items("anna") == set()
        assert await repo.forget_subject(child, []) == (0, 0)

    async def test_a_family_match_goes_on_without_an_erased_child(
        self, repo: NotificationRepository, rows: Rows
    ) -> None:
        child, sibling = pseudonym(), pseudonym()
        # Stored before subjects were kept per party, a family match names one child.
        match_id = await kept_match(
            repo, kind=MatchKind.FAMILY, subject=child, family=FAMILY, coordinator_id="carla"
        )
        mine, theirs = party(child, ANNA), party(sibling, BRAM, "JGZ")
        earlier = party(child, DIRK, "GGD")  # left the match before the erasure
        await repo.add_parties(match_id, [mine, theirs, earlier])
        for p in (mine, theirs, earlier):
            await task(repo, match_id, p)
        await rows.complete_task(match_id, earlier.registration_id, T0)
        await repo.drop_parties(match_id, [earlier.registration_id])
        everyone = [ANNA, BRAM, CARLA, DIRK]
        to_anna = await told(repo, match_id, ANNA, [child], contacts=[BRAM, CARLA, DIRK])
        to_dirk = await told(repo, match_id, DIRK, [child], contacts=[ANNA, BRAM, CARLA])
        to_bram = await told(repo, match_id, BRAM, [sibling], contacts=[ANNA, CARLA, DIRK])
        to_carla = await told(
            repo, match_id, CARLA, [child, sibling], part=Part.COORDINATOR, contacts=everyone
        )
        for w, with_ in (("bram", "anna"), ("bram", "carla"), ("dirk", "bram")):
            await rows.record_contact(match_id, w, with_, T0)
        overdue = [
            *unacknowledged_overdue(to_anna.alert_id, match_id, [worker("lead-a")], []),
            *unacknowledged_overdue(to_bram.alert_id, match_id, [worker("lead-a")], []),
        ]
        await repo.queue_overdue(overdue)

        # The registration that left is named, the one still there found by its subject.
        assert await repo.forget_subject(child, [earlier.registration_id]) == (0, 2)
        assert not await repo.forgotten(match_id)
        assert await repo.match(match_id) is not None
        assert await repo.matches_of(child) == []
        assert await repo.about(match_id) == About((sibling,), {"bram": (sibling,)})
        assert await repo.parties(match_id) == [(BRAM, "JGZ")]
        assert await rows.alert(to_anna.alert_id) is None
        assert await rows.alert(to_dirk.alert_id) is None
        assert await rows.alert(to_bram.alert_id) == ([sibling], ["carla"])
        assert await rows.alert(to_carla.alert_id) == ([sibling], ["bram", "carla"])
        assert await rows.contacts_made(match_id) == {("bram", "carla")}
        assert await rows.overdue_items() == {(overdue[1].item_id, "lead-a")}
        # Its tasks went, the done one too; the sibling's stays.
        assert await task(repo, match_id, mine)
        assert await task(repo, match_id, earlier)
        assert not await task(repo, match_id, theirs)

    async def test_ended_matches_and_old_notices_expire(
        self, repo: NotificationRepository, rows: Rows
    ) -> None:
        old, recent = await kept_match(repo), await kept_match(repo)
        await kept_match(repo)
        await repo.close_match(old, T0)
        await repo.close_match(recent, T0 + timedelta(days=10))
        old_notice = await told(repo, None, ANNA, [pseudonym()])
        new_notice = await told(repo, None, ANNA, [pseudonym()])
        of_match = await told(repo, old, ANNA, [pseudonym()])
        for alert, at in ((old_notice, T0), (new_notice, T0 + timedelta(days=10)), (of_match, T0)):
            await rows.issued(alert.alert_id, at)
        assert await repo.expired(T0 + timedelta(days=5)) == ([old], 1)
        assert await rows.alert(old_notice.alert_id) is None
        assert await rows.alert(new_notice.alert_id) is not None
        # A match's alerts wait for the match to be forgotten.
        assert await rows.alert(of_match.alert_id) is not None
        assert await repo.match(old) is not None

    async def test_forgotten_matches_go_with_all_they_hold(
        self, repo: NotificationRepository, rows: Rows
    ) -> None:
        child = pseudonym()
        match_id, other = await kept_match(repo, subject=child), await kept_match(repo)
        p = party(child, ANNA)
        await repo.add_parties(match_id, [p, party(child, BRAM)])
        await repo.add_parties(other, [party(pseudonym(), ANNA)])
        await task(repo, match_id, p)
        await rows.record_contact(match_id, "anna", "bram", T0)
        to_anna = await told(repo, match_id, ANNA, [child])
        await told(repo, match_id, BRAM, [child])
        elsewhere = await told(repo, other, ANNA, [pseudonym()])
        for alert in (to_anna, elsewhere):
            await repo.add_delivery(alert.alert_id, "webhook", "school")
        await repo.queue_for_digest(to_anna)
        await repo.queue_overdue(
            unacknowledged_overdue(to_anna.alert_id, match_id, [CARLA], [])
            + no_contact_overdue(match_id, [DIRK])
        )
        stays = no_contact_overdue(other, [DIRK])
        await repo.queue_overdue(stays)

        assert await repo.forget_matches([match_id]) == 2
        assert await repo.forgotten(match_id)
        assert await repo.match(match_id) is None
        assert await repo.parties(match_id) == []
        assert await repo.matches_of(child) == []
        assert await rows.contacts_made(match_id) == set()
        assert await rows.alert(to_anna.alert_id) is None
        assert await rows.deliveries() == {(elsewhere.alert_id, "webhook", "school")}
        assert await rows.digest_items("anna") == set()
        assert await rows.overdue_items() == {(stays[0].item_id, "dirk")}
        assert not await repo.forgotten(other)
        assert await repo.parties(other) == [(ANNA, "School")]
        assert await repo.forget_matches([]) == 0

    # --- telling people ---------------------------------------------------------------

    async def test_an_alert_is_stored_once(self, repo: NotificationRepository, rows: Rows) -> None:
        child = pseudonym()
        match_id = await kept_match(repo, subject=child)
        alert = await told(repo, match_id, ANNA, [child], contacts=[CARLA, BRAM])
        assert not await repo.add_alert(alert, [pseudonym()], "School")
        assert await rows.alert(alert.alert_id) == ([child], ["bram", "carla"])
        late = await repo.unacknowledged(LATER)
        assert [(a.alert_id, a.match_id, a.subjects, a.team_id) for a in late] == [
            (alert.alert_id, match_id, (child,), TEAM)
        ]

    async def test_an_alert_waits_for_a_digest_knowing_whether_its_case_is_new(
        self, repo: NotificationRepository, rows: Rows
    ) -> None:
        match_id = await kept_match(repo)
        first = await told(repo, match_id, ANNA, [pseudonym()])
        await repo.queue_for_digest(first)
        joined = await told(repo, match_id, ANNA, [pseudonym()], occasion="joined:x")
        await repo.queue_for_digest(joined)
        notice = await told(repo, None, ANNA, [pseudonym()])
        await repo.queue_for_digest(notice)
        to_bram = await told(repo, match_id, BRAM, [pseudonym()])
        await repo.queue_for_digest(to_bram)
        await repo.queue_for_digest(first)  # once
        assert await rows.digest_items("anna") == {
            (first.alert_id, True, False),
            (joined.alert_id, False, False),
            (notice.alert_id, False, False),
        }
        assert await rows.digest_items("bram") == {(to_bram.alert_id, True, False)}

    async def test_old_digests_go_with_their_items_unless_still_to_be_sent(
        self, repo: NotificationRepository, rows: Rows
    ) -> None:
        match_id = await kept_match(repo)
        old = T0 - timedelta(days=10)

        async def waiting(recipient: WorkerContact, occasion: str) -> uuid.UUID:
            alert = await told(repo, match_id, recipient, [pseudonym()], occasion=occasion)
            await repo.queue_for_digest(alert)
            return alert.alert_id

        sent = await waiting(ANNA, "1")
        late = no_contact_overdue(match_id, [ANNA])
        await repo.queue_overdue(late)
        await rows.digest(ANNA, old, "sent")
        unsent = await waiting(BRAM, "1")
        await rows.digest(BRAM, old, "pending")
        given_up = await waiting(CARLA, "1")
        await rows.digest(CARLA, old, "dead")
        recent = await waiting(ANNA, "2")
        await rows.digest(ANNA, T0, "sent")
        still_waiting = await waiting(ANNA, "3")

        assert await repo.prune_digests(T0 - timedelta(days=5)) == 2
        assert await repo.prune_digests(T0 - timedelta(days=5)) == 0
        assert await rows.digest_items("anna") == {
            (recent, False, True),
            (still_waiting, False, False),
        }
        assert await rows.digest_items("bram") == {(unsent, True, True)}
        assert await rows.digest_items("carla") == set()
        assert await rows.overdue_items() == set()
        assert await rows.deliveries() == {(None, "email", ANNA.email), (None, "email", BRAM.email)}
        assert await rows.alert(sent) is not None and await rows.alert(given_up) is not None

    async def test_a_delivery_is_kept_once_per_channel_and_target(
        self, repo: NotificationRepository, rows: Rows
    ) -> None:
        alert = await told(repo, await kept_match(repo), ANNA, [pseudonym()])
        for channel, target in (
            ("webhook", "school"),
            ("webhook", "school"),
            ("webhook", "jgz"),
            ("email", ANNA.email),
        ):
            await repo.add_delivery(alert.alert_id, channel, target)
        assert await rows.deliveries() == {
            (alert.alert_id, "webhook", "school"),
            (alert.alert_id, "webhook", "jgz"),
            (alert.alert_id, "email", ANNA.email),
        }

    async def test_a_wijk_count_only_grows_and_a_trend_stays(
        self, repo: NotificationRepository, rows: Rows
    ) -> None:
        await repo.add_trend_cell(WIJK, "school", "2026-W10", 12, False)
        await repo.add_trend_cell(WIJK, "school", "2026-W10", 10, True)  # overtaken
        assert await rows.trend(WIJK, "school", "2026-W10") == (12, True)
        await repo.add_trend_cell(WIJK, "school", "2026-W10", 14, False)
        assert await rows.trend(WIJK, "school", "2026-W10") == (14, True)
        await repo.add_trend_cell(WIJK, "home", "2026-W10", 11, False)
        assert await rows.trend(WIJK, "home", "2026-W10") == (11, False)
        assert await rows.trend(WIJK, "home", "2026-W11") is None

    # --- follow-up --------------------------------------------------------------------

    async def test_unacknowledged_alerts_of_open_matches_oldest_first(
        self, repo: NotificationRepository, rows: Rows
    ) -> None:
        child = pseudonym()
        match_id, closed = await kept_match(repo, subject=child), await kept_match(repo)
        await repo.close_match(closed, T0)
        later = await told(repo, match_id, CARLA, [child], part=Part.COORDINATOR)
        late = await told(repo, match_id, ANNA, [child])
        passed_over = [
            await told(repo, match_id, worker("rita"), [child], part=Part.REGIE),
            await told(repo, closed, ANNA, [child]),
            await told(repo, None, ANNA, [child]),
        ]
        read = await told(repo, match_id, BRAM, [child])
        await rows.acknowledge(read.alert_id, T0)
        escalated = await told(repo, match_id, DIRK, [child])
        await repo.mark_alert_escalated(escalated.alert_id, T0)
        await repo.mark_alert_escalated(uuid.uuid4(), T0)
        recent = await told(repo, match_id, worker("erik"), [child])
        for alert in (late, *passed_over, read, escalated):
            await rows.issued(alert.alert_id, T0)
        await rows.issued(later.alert_id, T0 + timedelta(hours=1))
        await rows.issued(recent.alert_id, T0 + timedelta(days=2))
        assert await repo.unacknowledged(T0 + timedelta(days=1)) == [
            LateAlert(late.alert_id, match_id, T0, (child,), TEAM),
            LateAlert(later.alert_id, match_id, T0 + timedelta(hours=1), (child,), TEAM),
        ]
        assert await repo.unacknowledged(T0) == []

    async def test_open_matches_without_contact_oldest_first(
        self, repo: NotificationRepository, rows: Rows
    ) -> None:
        quiet = await kept_match(repo, raised_at=T0 + timedelta(hours=1))
        quieter = await kept_match(repo, raised_at=T0)
        contacted = await kept_match(repo, raised_at=T0)
        await rows.record_contact(contacted, "anna", "bram", T0 + timedelta(hours=2))
        escalated = await kept_match(repo, raised_at=T0)
        await repo.mark_match_escalated(escalated, T0 + timedelta(days=3))
        await repo.mark_match_escalated(uuid.uuid4(), T0)
        closed = await kept_match(repo, raised_at=T0)
        await repo.close_match(closed, T0)
        await kept_match(repo, raised_at=T0 + timedelta(days=2))
        assert await repo.without_contact(T0 + timedelta(days=1)) == [
            QuietMatch(quieter, T0),
            QuietMatch(quiet, T0 + timedelta(hours=1)),
        ]
        assert await repo.without_contact(T0) == []

    async def test_an_overdue_item_is_queued_once(
        self, repo: NotificationRepository, rows: Rows
    ) -> None:
        match_id = await kept_match(repo)
        alert = await told(repo, match_id, ANNA, [pseudonym()])
        lead, regie = worker("lead-a"), worker("rita")
        items = unacknowledged_overdue(alert.alert_id, match_id, [lead], [regie])
        items += no_contact_overdue(match_id, [regie])
        await repo.queue_overdue(items)
        await repo.queue_overdue(items)
        await repo.queue_overdue([])
        assert await rows.overdue_items() == {
            (items[0].item_id, "lead-a"),
            (items[1].item_id, "rita"),
        }

    # --- the roster -------------------------------------------------------------------

    async def test_the_roster_answers_who_serves_a_wijk_and_who_someone_is(
        self, repo: NotificationRepository, rows: Rows
    ) -> None:
        await rows.team(TEAM, WIJK, "WK000002")
        await rows.team("team-b", "WK000003")
        reachable = ANNA.model_copy(update={"phone": "+31 6 12345678"})
        await rows.member(reachable, "worker", TEAM, active=False)
        await rows.member(worker("rita"), "regie")
        assert await repo.team_of("WK000002") == TEAM
        assert await repo.team_of("WK000003") == "team-b"
        assert await repo.team_of("WK000009") is None
        assert await repo.person("anna") == reachable  # also when no longer active
        assert await repo.person("rita") == worker("rita")
        assert await repo.person("nobody") is None

    async def test_the_regie_role_and_team_leads_are_the_active_ones_in_id_order(
        self, repo: NotificationRepository, rows: Rows
    ) -> None:
        await rows.team(TEAM, WIJK)
        await rows.team("team-b", "WK000002")
        for user_id, role, team_id, active in (
            ("regie-b", "regie", None, True),
            ("regie-a", "regie", None, True),
            ("regie-c", "regie", None, False),
            ("lead-b", "team_lead", TEAM, True),
            ("lead-a", "team_lead", TEAM, True),
            ("lead-c", "team_lead", TEAM, False),
            ("lead-d", "team_lead", "team-b", True),
            ("anna", "worker", TEAM, True),
        ):
            await rows.member(worker(user_id), role, team_id, active=active)
        assert await repo.regie() == [worker("regie-a"), worker("regie-b")]
        assert await repo.team_leads(TEAM) == [worker("lead-a"), worker("lead-b")]
        assert await repo.team_leads("team-b") == [worker("lead-d")]
        assert await repo.team_leads("team-c") == []

    async def test_a_teams_workers_with_the_open_matches_they_coordinate(
        self, repo: NotificationRepository, rows: Rows
    ) -> None:
        await rows.team(TEAM, WIJK)
        await rows.team("team-b", "WK000002")
        await rows.member(ANNA, "worker", TEAM)
        await rows.member(BRAM, "worker", TEAM, category=OrganisationCategory.JGZ, active=False)
        await rows.member(worker("lead-a"), "team_lead", TEAM)
        await rows.member(CARLA, "worker", "team-b")
        await rows.member(worker("rita"), "regie")
        for coordinator in ("anna", "anna", "bram"):
            await kept_match(repo, coordinator_id=coordinator)
        closed = await kept_match(repo, coordinator_id="anna")
        await repo.close_match(closed, T0)
        await kept_match(repo, team_id="team-b", coordinator_id="bram")  # counted too
        workers = sorted(await repo.team_workers(TEAM), key=lambda w: w.worker_id)
        assert workers == [
            TeamWorker("anna", OrganisationCategory.JEUGDHULP, True, 2),
            TeamWorker("bram", OrganisationCategory.JGZ, False, 2),
        ]
        assert await repo.team_workers("team-c") == []
        assert await repo.member("anna") == TeamWorker(
            "anna", OrganisationCategory.JEUGDHULP, True, 0
        )
        assert await repo.member("bram") == TeamWorker("bram", OrganisationCategory.JGZ, False, 0)
        assert await repo.member("lead-a") == TeamWorker(
            "lead-a", OrganisationCategory.JEUGDHULP, True, 0
        )
        assert await repo.member("nobody") is None
