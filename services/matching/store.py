"""Matching's repository on PostgreSQL: registrations (personal fields sealed), family
clusters, matches and their participants, wijk counts, pending shreds. Every query is by
subject, cluster or index: the cost per signal does not grow with history. The contract
it keeps is ports.MatchingRepository, the same as the in-memory one's."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

from services.matching.domain import EndReason, OpenMatch, Raise, Registration
from services.matching.ports import Cell, MatchRef, StoredRegistration
from shared.contracts import MatchKind, OrganisationCategory
from shared.db import Conn, lock


def _stored(row: object) -> StoredRegistration:
    r = dict(row)  # type: ignore[call-overload]
    return StoredRegistration(
        registration_id=r["registration_id"],
        subject=r["subject"],
        organisation=r["organisation"],
        organisation_category=OrganisationCategory(r["organisation_category"]),
        registered_at=r["registered_at"],
        expires_at=r["expires_at"],
        age_limit_from=r["age_limit_from"],
        sealed=r["sealed"],
        end_reason=EndReason(r["end_reason"]) if r["end_reason"] else None,
        partner_id=r.get("partner_id"),
    )


COLUMNS = (
    "registration_id, subject, organisation, organisation_category, registered_at,"
    " expires_at, age_limit_from, sealed, end_reason, partner_id"
)


class PostgresRepository:
    """Matching's repository on PostgreSQL, within the caller's transaction."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def lock(self, names: Iterable[str]) -> None:
        await lock(self.conn, names)

    async def add_registration(self, reg: StoredRegistration) -> bool:
        row = await self.conn.fetchrow(
            "INSERT INTO registrations (registration_id, subject, organisation,"
            " organisation_category, sealed, registered_at, expires_at, age_limit_from,"
            " partner_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            " ON CONFLICT DO NOTHING RETURNING registration_id",
            reg.registration_id,
            reg.subject,
            reg.organisation,
            reg.organisation_category.value,
            reg.sealed,
            reg.registered_at,
            reg.expires_at,
            reg.age_limit_from,
            reg.partner_id,
        )
        return row is not None

    async def live_registrations(self, subjects: Sequence[str]) -> list[StoredRegistration]:
        rows = await self.conn.fetch(
            f"SELECT {COLUMNS} FROM registrations WHERE subject = ANY($1) AND end_reason IS NULL",
            list(subjects),
        )
        return [_stored(r) for r in rows]

    async def all_registrations(self, subject: str) -> list[StoredRegistration]:
        """Live and archived: everything kept of a subject."""
        rows = await self.conn.fetch(
            f"SELECT {COLUMNS} FROM registrations WHERE subject = $1", subject
        )
        return [_stored(r) for r in rows]

    async def registration(self, registration_id: uuid.UUID) -> StoredRegistration | None:
        row = await self.conn.fetchrow(
            f"SELECT {COLUMNS} FROM registrations WHERE registration_id = $1", registration_id
        )
        return _stored(row) if row else None

    async def unnoticed_archive(self, subject: str, now: datetime) -> list[tuple[uuid.UUID, str]]:
        rows = await self.conn.fetch(
            "SELECT registration_id, organisation FROM registrations WHERE subject = $1"
            " AND archive_until > $2 AND noticed_at IS NULL ORDER BY registered_at",
            subject,
            now,
        )
        return [(r["registration_id"], r["organisation"]) for r in rows]

    async def mark_noticed(self, ids: Sequence[uuid.UUID], now: datetime) -> None:
        await self.conn.execute(
            "UPDATE registrations SET noticed_at = $2 WHERE registration_id = ANY($1)",
            list(ids),
            now,
        )

    async def end_registration(
        self,
        registration_id: uuid.UUID,
        reason: EndReason,
        at: datetime,
        archive_until: datetime | None,
    ) -> None:
        if archive_until is None:
            # Not archived: nothing of it stays (its participation rows go with it).
            await self.conn.execute(
                "DELETE FROM match_participants WHERE registration_id = $1", registration_id
            )
            await self.conn.execute(
                "DELETE FROM registrations WHERE registration_id = $1", registration_id
            )
            return
        await self.conn.execute(
            "UPDATE registrations SET ended_at = $2, end_reason = $3, archive_until = $4"
            " WHERE registration_id = $1",
            registration_id,
            at,
            reason.value,
            archive_until,
        )

    async def due_to_end(self, now: datetime, limit: int) -> list[StoredRegistration]:
        rows = await self.conn.fetch(
            f"SELECT {COLUMNS} FROM registrations WHERE end_reason IS NULL AND expires_at <= $1"
            " ORDER BY expires_at, registration_id LIMIT $2 FOR UPDATE SKIP LOCKED",
            now,
            limit,
        )
        return [_stored(r) for r in rows]

    async def archive_past(self, now: datetime, limit: int) -> list[tuple[uuid.UUID, str]]:
        """Delete archived registrations whose archive period or age limit has passed, with
        their part in past matches; closed matches left without participants go too."""
        rows = await self.conn.fetch(
            "SELECT registration_id, subject FROM registrations WHERE archive_until <= $1"
            " ORDER BY archive_until, registration_id LIMIT $2 FOR UPDATE SKIP LOCKED",
            now,
            limit,
        )
        ids = [r["registration_id"] for r in rows]
        if ids:
            await self.conn.execute(
                "DELETE FROM match_participants WHERE registration_id = ANY($1)", ids
            )
            await self.conn.execute(
                "DELETE FROM registrations WHERE registration_id = ANY($1)", ids
            )
            await self.conn.execute(
                "DELETE FROM matches m WHERE m.status <> 'open' AND NOT EXISTS"
                " (SELECT 1 FROM match_participants p WHERE p.match_id = m.match_id)"
            )
        return [(r["registration_id"], r["subject"]) for r in rows]

    async def forget_subject(self, subject: str) -> None:
        """Nothing of the subject is kept: its place in a family cluster goes too, and with
        the cluster's last subject its links (parent and household pseudonyms) go as well."""
        # The cluster's lock before any row of it is touched, as join_family takes them.
        cluster = await self.family_root(subject)
        while cluster is not None:
            await self.lock([f"cluster:{cluster}"])
            now = await self.family_root(subject)
            if now == cluster:
                break
            cluster = now  # merged meanwhile: lock the cluster it is in now
        if cluster is None:
            return
        await self.conn.execute("DELETE FROM family_nodes WHERE node = $1", f"s:{subject}")
        await self.conn.execute(
            "DELETE FROM family_nodes WHERE cluster = $1 AND NOT EXISTS"
            " (SELECT 1 FROM family_nodes s WHERE s.cluster = $1 AND s.node LIKE 's:%')",
            cluster,
        )

    async def next_due(self) -> datetime | None:
        value = await self.conn.fetchval(
            "SELECT least((SELECT min(expires_at) FROM registrations WHERE end_reason IS NULL),"
            " (SELECT min(archive_until) FROM registrations WHERE archive_until IS NOT NULL))"
        )
        return value  # type: ignore[no-any-return]

    async def organisations_of(self, subject: str) -> int:
        """How many organisations keep registrations (live or archived) of a subject; one
        without its partner kept (before migration 007) counts by its organisation's name."""
        return int(
            await self.conn.fetchval(
                "SELECT count(DISTINCT coalesce(partner_id, 'organisation:' || organisation))"
                " FROM registrations WHERE subject = $1",
                subject,
            )
        )

    async def subject_is_gone(self, subject: str) -> bool:
        return not await self.conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM registrations WHERE subject = $1)", subject
        )

    # --- family clusters ----------------------------------------------------------------

    async def join_family(self, subject: str, links: Sequence[str]) -> tuple[str, list[str]]:
        """Put `subject` and its links in one cluster, merging clusters as needed.

        Returns the cluster's id (its root) and the ids of the clusters it absorbed. Locks
        every node and every cluster involved (re-reading until stable), so concurrent merges
        lose nothing.
        """
        nodes = [f"s:{subject}", *(f"l:{link}" for link in links)]
        await self.lock(nodes)
        locked: set[str] = set()
        while True:
            rows = await self.conn.fetch(
                "SELECT node, cluster FROM family_nodes WHERE node = ANY($1)", nodes
            )
            roots = {r["cluster"] for r in rows}
            if roots <= locked:
                break
            await self.lock([f"cluster:{r}" for r in roots - locked])
            locked |= roots
        existing = {r["node"] for r in rows}
        # A new cluster gets a random id, never a node's name (a pseudonym): it is the key of
        # the family's match events and derives the family match's id, and must identify no
        # one, nor outlive an erased child as a label of its siblings.
        root = min(roots) if roots else secrets.token_hex(32)
        absorbed = sorted(roots - {root})
        await self.conn.executemany(
            "INSERT INTO family_nodes (node, cluster) VALUES ($1, $2)",
            [(n, root) for n in nodes if n not in existing],
        )
        if absorbed:
            await self.conn.execute(
                "UPDATE family_nodes SET cluster = $1 WHERE cluster = ANY($2)", root, absorbed
            )
        return root, absorbed

    async def family_subjects(self, root: str) -> list[str]:
        rows = await self.conn.fetch(
            "SELECT node FROM family_nodes WHERE cluster = $1 AND node LIKE 's:%'", root
        )
        return [r["node"][2:] for r in rows]

    async def family_root(self, subject: str) -> str | None:
        value = await self.conn.fetchval(
            "SELECT cluster FROM family_nodes WHERE node = $1", f"s:{subject}"
        )
        return str(value) if value is not None else None

    # --- matches ------------------------------------------------------------------------

    async def open_match(
        self, kind: MatchKind, key: str, wijk_of: dict[uuid.UUID, str]
    ) -> OpenMatch | None:
        row = await self.conn.fetchrow(
            "SELECT match_id FROM matches WHERE kind = $1 AND key = $2 AND status = 'open'",
            kind.value,
            key,
        )
        if row is None:
            return None
        members = await self.conn.fetch(
            "SELECT p.registration_id FROM match_participants p JOIN registrations r"
            " USING (registration_id) WHERE p.match_id = $1"
            " ORDER BY r.registered_at, p.registration_id",
            row["match_id"],
        )
        ids = [m["registration_id"] for m in members]
        wijk = next((wijk_of[i] for i in reversed(ids) if i in wijk_of), "")
        return OpenMatch(row["match_id"], kind, key, frozenset(ids), wijk)

    async def family_key(self, cluster: str) -> str:
        """The name of the key a cluster's family matches are sealed under (made if none)."""
        await self.conn.execute(
            "INSERT INTO family_keys (cluster, sealed_under) VALUES ($1, $2)"
            " ON CONFLICT (cluster) DO NOTHING",
            cluster,
            secrets.token_hex(32),
        )
        value = await self.conn.fetchval(
            "SELECT sealed_under FROM family_keys WHERE cluster = $1", cluster
        )
        return str(value)

    async def retire_family_key(self, cluster: str) -> str | None:
        """Unlist a cluster's key (to be shredded by the caller); the next family match
        event of the cluster is sealed under a new one."""
        value = await self.conn.fetchval(
            "DELETE FROM family_keys WHERE cluster = $1 RETURNING sealed_under", cluster
        )
        return None if value is None else str(value)

    async def match_subjects(self, match_id: uuid.UUID) -> set[str]:
        """The subjects whose registrations take part in a match now."""
        rows = await self.conn.fetch(
            "SELECT DISTINCT r.subject FROM match_participants p JOIN registrations r"
            " USING (registration_id) WHERE p.match_id = $1",
            match_id,
        )
        return {r["subject"] for r in rows}

    async def open_family_matches(self, keys: Sequence[str]) -> list[uuid.UUID]:
        rows = await self.conn.fetch(
            "SELECT match_id FROM matches WHERE kind = 'family' AND key = ANY($1)"
            " AND status = 'open' ORDER BY raised_at, match_id",
            list(keys),
        )
        return [r["match_id"] for r in rows]

    async def rekey_family_match(self, match_id: uuid.UUID, key: str) -> None:
        await self.conn.execute("UPDATE matches SET key = $2 WHERE match_id = $1", match_id, key)

    async def add_match(self, decision: Raise, at: datetime) -> bool:
        row = await self.conn.fetchrow(
            "INSERT INTO matches (match_id, kind, key, rule, policy_version, raised_at)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (match_id) DO NOTHING"
            " RETURNING match_id",
            decision.match_id,
            decision.kind.value,
            decision.key,
            decision.rule,
            decision.policy_version,
            at,
        )
        if row is None:
            return False
        await self.add_participants(decision.match_id, decision.participants)
        return True

    async def add_participants(
        self, match_id: uuid.UUID, registrations: Sequence[Registration]
    ) -> None:
        await self.conn.executemany(
            "INSERT INTO match_participants (match_id, registration_id) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING",
            [(match_id, r.registration_id) for r in registrations],
        )

    async def open_matches_with(self, registration_id: uuid.UUID) -> list[MatchRef]:
        rows = await self.conn.fetch(
            "SELECT m.match_id, m.kind, m.key FROM matches m JOIN match_participants p"
            " USING (match_id) WHERE p.registration_id = $1 AND m.status = 'open'"
            " ORDER BY m.raised_at, m.match_id",
            registration_id,
        )
        return [MatchRef(r["match_id"], MatchKind(r["kind"]), r["key"]) for r in rows]

    async def participant_ids(self, match_id: uuid.UUID) -> list[uuid.UUID]:
        rows = await self.conn.fetch(
            "SELECT registration_id FROM match_participants WHERE match_id = $1"
            " ORDER BY registration_id",
            match_id,
        )
        return [r["registration_id"] for r in rows]

    async def remove_participants(
        self, match_id: uuid.UUID, registration_ids: Sequence[uuid.UUID]
    ) -> None:
        await self.conn.execute(
            "DELETE FROM match_participants WHERE match_id = $1 AND registration_id = ANY($2)",
            match_id,
            list(registration_ids),
        )

    async def close_match(self, match_id: uuid.UUID, status: str, at: datetime) -> None:
        await self.conn.execute(
            "UPDATE matches SET status = $2, closed_at = $3 WHERE match_id = $1",
            match_id,
            status,
            at,
        )

    async def counts(self) -> dict[str, int]:
        row = await self.conn.fetchrow(
            "SELECT (SELECT count(*) FROM registrations WHERE end_reason IS NULL) AS registrations,"
            " (SELECT count(*) FROM matches WHERE status = 'open') AS open_matches,"
            " (SELECT count(*) FROM matches WHERE status = 'open' AND kind = 'family')"
            " AS open_family_matches"
        )
        assert row is not None
        return dict(row)

    # --- wijk x theme aggregates --------------------------------------------------------

    async def set_count(self, wijk: str, theme: str, window: str, children: int) -> int | None:
        """Take a cell's count as intake published it; the new count, or None when it is not
        higher than the one known (counts only grow; a late, older count changes nothing)."""
        value = await self.conn.fetchval(
            "INSERT INTO theme_counts (wijk, theme, window_id, children) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (wijk, theme, window_id) DO UPDATE SET children = EXCLUDED.children"
            " WHERE theme_counts.children < EXCLUDED.children RETURNING children",
            wijk,
            theme,
            window,
            children,
        )
        return None if value is None else int(value)

    async def unpublished_cells(self, k: int, limit: int) -> list[Cell]:
        """Cells of at least k children whose count changed since it was last published."""
        rows = await self.conn.fetch(
            "SELECT wijk, theme, window_id, children, trend FROM theme_counts"
            " WHERE children <> published AND children >= $1"
            " ORDER BY window_id, wijk, theme LIMIT $2 FOR UPDATE SKIP LOCKED",
            k,
            limit,
        )
        return [
            Cell(r["wijk"], r["theme"], r["window_id"], r["children"], r["trend"]) for r in rows
        ]

    async def mark_published(self, wijk: str, theme: str, window: str, children: int) -> None:
        await self.conn.execute(
            "UPDATE theme_counts SET published = $4"
            " WHERE wijk = $1 AND theme = $2 AND window_id = $3",
            wijk,
            theme,
            window,
            children,
        )

    async def window_counts(self, wijk: str, theme: str, windows: Sequence[str]) -> list[int]:
        rows = await self.conn.fetch(
            "SELECT window_id, children FROM theme_counts"
            " WHERE wijk = $1 AND theme = $2 AND window_id = ANY($3)",
            wijk,
            theme,
            list(windows),
        )
        found = {r["window_id"]: r["children"] for r in rows}
        return [found.get(w, 0) for w in windows]

    async def mark_trend(self, wijk: str, theme: str, window: str) -> bool:
        """Record a trend once per cell; False when it was raised before."""
        return bool(
            await self.conn.fetchval(
                "UPDATE theme_counts SET trend = true WHERE wijk = $1 AND theme = $2"
                " AND window_id = $3 AND NOT trend RETURNING true",
                wijk,
                theme,
                window,
            )
        )

    async def cells(self, wijk: str, windows: Sequence[str]) -> list[Cell]:
        rows = await self.conn.fetch(
            "SELECT theme, window_id, children, trend FROM theme_counts"
            " WHERE wijk = $1 AND window_id = ANY($2) ORDER BY window_id, theme",
            wijk,
            list(windows),
        )
        return [Cell(wijk, r["theme"], r["window_id"], r["children"], r["trend"]) for r in rows]

    async def schedule_shred(self, subject: str) -> None:
        await self.conn.execute(
            "INSERT INTO pending_shreds (subject) VALUES ($1) ON CONFLICT DO NOTHING", subject
        )

    async def pending_shreds(self, limit: int) -> list[str]:
        rows = await self.conn.fetch(
            "SELECT subject FROM pending_shreds ORDER BY decided_at LIMIT $1", limit
        )
        return [r["subject"] for r in rows]

    async def shredded(self, subject: str) -> None:
        await self.conn.execute("DELETE FROM pending_shreds WHERE subject = $1", subject)
