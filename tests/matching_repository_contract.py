"""One contract for matching's repository (services/matching/ports.MatchingRepository),
run against each implementation: in memory (tests/unit/test_matching_repository.py)
and on PostgreSQL (tests/integration/test_matching_repository.py). A behaviour the
replay relies on and the service does not keep, or the other way round, fails here.

A subclass provides the `repo` fixture, a fresh, empty repository."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from services.matching.domain import EndReason, Raise, Registration
from services.matching.ports import Cell, MatchingRepository, MatchRef, StoredRegistration
from shared.contracts import MatchKind, OrganisationCategory
from tests.factories import pseudonym, worker

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def stored(
    subject: str,
    organisation: str = "school",
    *,
    at: datetime = T0,
    days: int = 730,
    partner: str | None = None,
) -> StoredRegistration:
    return StoredRegistration(
        registration_id=uuid.uuid4(),
        subject=subject,
        organisation=organisation,
        organisation_category=OrganisationCategory.ONDERWIJS,
        registered_at=at,
        expires_at=at + timedelta(days=days),
        age_limit_from=date(2040, 1, 1),
        sealed="v1.AAAA",
        partner_id=partner or f"partner-{organisation}",
    )


def live(reg: StoredRegistration, wijk: str = "WK000001") -> Registration:
    return Registration(
        registration_id=reg.registration_id,
        subject=reg.subject,
        organisation=reg.organisation,
        worker=worker("w"),
        wijk=wijk,
        registered_at=reg.registered_at,
        expires_at=reg.expires_at,
    )


def raise_(kind: MatchKind, key: str, *regs: StoredRegistration) -> Raise:
    return Raise(uuid.uuid4(), kind, key, tuple(live(r) for r in regs), "WK000001", "rule", "v1")


async def kept(repo: MatchingRepository, *regs: StoredRegistration) -> None:
    for r in regs:
        assert await repo.add_registration(r)


class MatchingRepositoryContract:
    # --- registrations ----------------------------------------------------------------

    async def test_a_registration_is_kept_once(self, repo: MatchingRepository) -> None:
        reg = stored(pseudonym())
        assert await repo.add_registration(reg)
        assert not await repo.add_registration(reg)
        assert await repo.registration(reg.registration_id) == reg
        assert await repo.registration(uuid.uuid4()) is None

    async def test_live_and_all_registrations(self, repo: MatchingRepository) -> None:
        child, other = pseudonym(), pseudonym()
        a, b, c = stored(child), stored(child, "jgz"), stored(other)
        await kept(repo, a, b, c)
        await repo.end_registration(a.registration_id, EndReason.EXPIRED, T0, T0 + timedelta(1))
        assert {r.registration_id for r in await repo.live_registrations([child])} == {
            b.registration_id
        }
        assert {r.registration_id for r in await repo.live_registrations([child, other])} == {
            b.registration_id,
            c.registration_id,
        }
        ended = {r.registration_id: r for r in await repo.all_registrations(child)}
        assert set(ended) == {a.registration_id, b.registration_id}
        assert ended[a.registration_id].end_reason is EndReason.EXPIRED

    async def test_an_ending_not_archived_goes_with_its_places_in_matches(
        self, repo: MatchingRepository
    ) -> None:
        child = pseudonym()
        a, b, c = stored(child), stored(child, "jgz"), stored(child, "gp")
        await kept(repo, a, b, c)
        match = raise_(MatchKind.PERSON, child, a, b, c)
        assert await repo.add_match(match, T0)
        await repo.end_registration(a.registration_id, EndReason.ERASED, T0, None)
        assert await repo.registration(a.registration_id) is None
        assert await repo.participant_ids(match.match_id) == sorted(
            [b.registration_id, c.registration_id]
        )
        await repo.end_registration(b.registration_id, EndReason.EXPIRED, T0, T0 + timedelta(9))
        # Archived: it keeps its place until the match is next decided.
        assert b.registration_id in await repo.participant_ids(match.match_id)
        assert not await repo.subject_is_gone(child)

    async def test_what_is_due_to_end_soonest_first(self, repo: MatchingRepository) -> None:
        early, late, ended = (stored(pseudonym(), days=d) for d in (10, 20, 5))
        await kept(repo, late, early, ended)
        await repo.end_registration(
            ended.registration_id, EndReason.EXPIRED, T0, T0 + timedelta(days=100)
        )
        assert await repo.due_to_end(T0 + timedelta(days=9), 10) == []
        due = await repo.due_to_end(T0 + timedelta(days=30), 10)
        assert [r.registration_id for r in due] == [early.registration_id, late.registration_id]
        assert len(await repo.due_to_end(T0 + timedelta(days=30), 1)) == 1
        assert await repo.next_due() == early.expires_at

    async def test_the_archive_clears_past_its_period(self, repo: MatchingRepository) -> None:
        child = pseudonym()
        a, b = stored(child), stored(child, "jgz")
        await kept(repo, a, b)
        match = raise_(MatchKind.PERSON, child, a, b)
        await repo.add_match(match, T0)
        await repo.close_match(match.match_id, "dissolved", T0)
        for r, days in ((a, 3), (b, 4)):
            await repo.end_registration(
                r.registration_id, EndReason.EXPIRED, T0, T0 + timedelta(days=days)
            )
        assert await repo.next_due() == T0 + timedelta(days=3)
        assert await repo.archive_past(T0 + timedelta(days=3), 10) == [(a.registration_id, child)]
        assert await repo.archive_past(T0 + timedelta(days=9), 10) == [(b.registration_id, child)]
        assert await repo.subject_is_gone(child)
        assert await repo.next_due() is None
        # The closed match went with its last participant.
        assert await repo.match_subjects(match.match_id) == set()

    async def test_the_earlier_involvement_is_noticed_once(self, repo: MatchingRepository) -> None:
        child = pseudonym()
        old = stored(child, "jgz", at=T0)
        older = stored(child, "gp", at=T0 - timedelta(1))
        now = stored(child)
        await kept(repo, old, older, now)
        until = T0 + timedelta(days=100)
        for r in (old, older):
            await repo.end_registration(r.registration_id, EndReason.EXPIRED, T0, until)
        assert await repo.unnoticed_archive(child, T0) == [
            (older.registration_id, "gp"),
            (old.registration_id, "jgz"),
        ]
        assert await repo.unnoticed_archive(child, until) == []  # the archive is over by then
        await repo.mark_noticed([older.registration_id, old.registration_id], T0)
        assert await repo.unnoticed_archive(child, T0) == []

    async def test_organisations_count_by_partner(self, repo: MatchingRepository) -> None:
        child = pseudonym()
        await kept(
            repo,
            stored(child, "school", partner="p1"),
            stored(child, "school", partner="p1"),
            stored(child, "jgz", partner="p2"),
        )
        assert await repo.organisations_of(child) == 2
        assert await repo.organisations_of(pseudonym()) == 0

    # --- family clusters ------------------------------------------------------------

    async def test_families_join_and_merge(self, repo: MatchingRepository) -> None:
        a, b, c = pseudonym(), pseudonym(), pseudonym()
        first, absorbed = await repo.join_family(a, ["parent:1"])
        assert absorbed == [] and len(first) == 64 and first not in (a, b)
        assert await repo.join_family(b, ["parent:1"]) == (first, [])
        second, _ = await repo.join_family(c, ["parent:2"])
        assert second != first
        root, absorbed = await repo.join_family(c, ["parent:1", "parent:2"])
        assert root == min(first, second) and absorbed == [max(first, second)]
        assert sorted(await repo.family_subjects(root)) == sorted([a, b, c])
        assert await repo.family_root(a) == root == await repo.family_root(c)
        assert await repo.family_root(pseudonym()) is None

    async def test_a_forgotten_subject_leaves_its_family(self, repo: MatchingRepository) -> None:
        a, b = pseudonym(), pseudonym()
        root, _ = await repo.join_family(a, ["household:1"])
        await repo.join_family(b, ["household:1"])
        await repo.forget_subject(a)
        assert await repo.family_root(a) is None
        assert await repo.family_subjects(root) == [b]
        await repo.forget_subject(b)
        # With the last child, the links go too: a newcomer on them starts a new cluster.
        fresh, absorbed = await repo.join_family(pseudonym(), ["household:1"])
        assert fresh != root and absorbed == []

    async def test_a_family_key_is_kept_until_retired(self, repo: MatchingRepository) -> None:
        root, _ = await repo.join_family(pseudonym(), ["parent:1"])
        key = await repo.family_key(root)
        assert await repo.family_key(root) == key and key != root
        assert await repo.retire_family_key(root) == key
        assert await repo.retire_family_key(root) is None
        assert await repo.family_key(root) != key

    # --- matches --------------------------------------------------------------------

    async def test_an_open_match_and_its_participants(self, repo: MatchingRepository) -> None:
        child = pseudonym()
        a = stored(child, at=T0)
        b = stored(child, "jgz", at=T0 + timedelta(hours=1))
        c = stored(child, "gp", at=T0 + timedelta(hours=2))
        await kept(repo, a, b, c)
        match = raise_(MatchKind.PERSON, child, a, b)
        assert await repo.add_match(match, T0)
        assert not await repo.add_match(match, T0)
        assert await repo.open_match(MatchKind.FAMILY, child, {}) is None
        wijks = {a.registration_id: "WK000001", b.registration_id: "WK000002"}
        found = await repo.open_match(MatchKind.PERSON, child, wijks)
        assert found is not None and found.match_id == match.match_id
        assert found.participants == {a.registration_id, b.registration_id}
        assert found.wijk == "WK000002"  # the newest participant's
        await repo.add_participants(match.match_id, [live(c)])
        await repo.add_participants(match.match_id, [live(c)])  # once
        assert await repo.participant_ids(match.match_id) == sorted(
            r.registration_id for r in (a, b, c)
        )
        assert await repo.open_matches_with(c.registration_id) == [
            MatchRef(match.match_id, MatchKind.PERSON, child)
        ]
        await repo.remove_participants(match.match_id, [a.registration_id])
        assert await repo.match_subjects(match.match_id) == {child}
        await repo.close_match(match.match_id, "dissolved", T0)
        assert await repo.open_match(MatchKind.PERSON, child, wijks) is None
        assert await repo.open_matches_with(c.registration_id) == []
        assert await repo.counts() == {
            "registrations": 3,
            "open_matches": 0,
            "open_family_matches": 0,
        }

    async def test_family_matches_oldest_first_and_rekeyed(self, repo: MatchingRepository) -> None:
        a, b, c, d = (stored(pseudonym(), org) for org in ("school", "jgz", "gp", "jgz"))
        await kept(repo, a, b, c, d)
        older = raise_(MatchKind.FAMILY, "1" * 64, a, b)
        newer = raise_(MatchKind.FAMILY, "2" * 64, c, d)
        await repo.add_match(newer, T0 + timedelta(minutes=1))
        await repo.add_match(older, T0)
        assert await repo.open_family_matches(["2" * 64, "1" * 64]) == [
            older.match_id,
            newer.match_id,
        ]
        await repo.rekey_family_match(older.match_id, "3" * 64)
        assert await repo.open_family_matches(["1" * 64]) == []
        assert await repo.open_family_matches(["3" * 64]) == [older.match_id]
        assert (await repo.counts())["open_family_matches"] == 2
        assert await repo.match_subjects(older.match_id) == {a.subject, b.subject}

    # --- wijk x theme counts ----------------------------------------------------------

    async def test_counts_only_grow_and_publish_from_k(self, repo: MatchingRepository) -> None:
        assert await repo.set_count("WK000001", "school", "2026-W10", 12) == 12
        assert await repo.set_count("WK000001", "school", "2026-W10", 11) is None
        assert await repo.set_count("WK000001", "school", "2026-W10", 14) == 14
        assert await repo.set_count("WK000001", "home", "2026-W10", 3) == 3
        assert await repo.unpublished_cells(10, 10) == [Cell("WK000001", "school", "2026-W10", 14)]
        await repo.mark_published("WK000001", "school", "2026-W10", 14)
        assert await repo.unpublished_cells(10, 10) == []
        assert await repo.window_counts("WK000001", "school", ["2026-W09", "2026-W10"]) == [
            0,
            14,
        ]
        assert await repo.mark_trend("WK000001", "school", "2026-W10")
        assert not await repo.mark_trend("WK000001", "school", "2026-W10")
        assert await repo.cells("WK000001", ["2026-W10"]) == [
            Cell("WK000001", "home", "2026-W10", 3),
            Cell("WK000001", "school", "2026-W10", 14, trend=True),
        ]

    # --- shredding ------------------------------------------------------------------

    async def test_pending_shreds(self, repo: MatchingRepository) -> None:
        a, b = pseudonym(), pseudonym()
        await repo.schedule_shred(a)
        await repo.schedule_shred(a)
        await repo.schedule_shred(b)
        assert sorted(await repo.pending_shreds(10)) == sorted([a, b])
        assert len(await repo.pending_shreds(1)) == 1
        await repo.shredded(a)
        assert await repo.pending_shreds(10) == [b]
