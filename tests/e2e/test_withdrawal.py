"""Withdrawal by the worker (rule 5), from the partner's side to matching: an unjustified
registration goes without a trace and dissolves the match; a resolved one is archived."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path

import asyncpg
import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from shared.auth import Role
from shared.contracts import MatchDissolved, MatchRaised, Topics, WithdrawalReason
from shared.kafka import create_broker
from shared.settings import Settings
from tests.conftest import auth, eventually, keys_fetchval
from tests.e2e.test_pipeline import GP, JGZ, SCHOOL, export, get_json, partner_config, row
from tests.kafka_tools import read_all, read_topic
from vroegsignaal.partner.bsn import synthetic_bsns
from vroegsignaal.partner.producer import PartnerProducer
from vroegsignaal.provision.secrets import Secrets

pytestmark = pytest.mark.e2e


async def test_withdrawals_dissolve_the_match_and_archive_only_the_resolved(
    settings: Settings, secrets: Secrets, services: dict[str, str], tmp_path: Path
) -> None:
    topics = Topics(settings.topic_prefix)
    (child,) = synthetic_bsns(1, random.Random())
    today = datetime.now(UTC).date()
    school_csv = export(tmp_path / "school.csv", [row(child, "", "juf-anouk", "pesten")])
    jgz_csv = export(tmp_path / "jgz.csv", [row(child, "", "jgz-fleur", "armoede")])
    broker, _ = create_broker(
        settings,
        client_id="partners",
        tracer_provider=TracerProvider(),
        registry=CollectorRegistry(),
    )
    await broker.start()

    async def summary() -> dict[str, int]:
        data: dict[str, int] = await get_json(f"{services['matching']}/matches/summary")
        return data

    try:
        async with httpx.AsyncClient(timeout=10) as http:

            def producer(partner: str) -> PartnerProducer:
                config = partner_config(secrets, settings, partner)
                return PartnerProducer(config, broker, topics, http)

            await producer(SCHOOL).send_file(school_csv, today=today)
            await producer(JGZ).send_file(jgz_csv, today=today)

            async def matched() -> bool:
                return (await summary())["open_matches"] == 1

            await eventually(matched, timeout=60)
            await producer(JGZ).withdraw_file(jgz_csv, WithdrawalReason.UNJUSTIFIED, today=today)

            async def dissolved() -> bool:
                s = await summary()
                return (s["open_matches"], s["registrations"]) == (0, 1)

            await eventually(dissolved, timeout=60)
            await producer(SCHOOL).withdraw_file(school_csv, WithdrawalReason.RESOLVED, today=today)

            async def all_withdrawn() -> bool:
                return (await summary())["registrations"] == 0

            await eventually(all_withdrawn, timeout=60)
    finally:
        await broker.stop()

    (event,) = [
        MatchDissolved.model_validate_json(r.value)
        for r in await read_topic(
            settings,
            topics.match_lifecycle,
            until=lambda rs: any(dict(r.headers)["vs-event-type"] == b"MatchDissolved" for r in rs),
        )
        if dict(r.headers)["vs-event-type"] == b"MatchDissolved"
    ]
    conn = await asyncpg.connect(settings.database_url)
    try:
        kept = await conn.fetch(
            "SELECT organisation, end_reason, archive_until IS NOT NULL AS archived"
            " FROM matching.registrations"
        )
        # The unjustified registration left no row; the resolved one is archived.
        assert [tuple(r) for r in kept] == [
            ("Basisschool De Regenboog", "withdrawn-resolved", True)
        ]
        assert len(event.remaining) == 1
    finally:
        await conn.close()


async def test_a_partner_erases_its_own_and_the_privacy_officer_the_subject_as_a_whole(
    settings: Settings, secrets: Secrets, services: dict[str, str], tmp_path: Path
) -> None:
    topics = Topics(settings.topic_prefix)
    child, sibling, mother = synthetic_bsns(3, random.Random())
    today = datetime.now(UTC).date()
    school_csv = export(tmp_path / "school.csv", [row(child, mother, "juf-anouk", "pesten")])
    jgz_csv = export(
        tmp_path / "jgz.csv",
        [row(child, mother, "jgz-fleur", "armoede"), row(sibling, mother, "jgz-fleur", "pesten")],
    )
    broker, _ = create_broker(
        settings,
        client_id="partners",
        tracer_provider=TracerProvider(),
        registry=CollectorRegistry(),
    )
    await broker.start()

    async def summary() -> dict[str, int]:
        data: dict[str, int] = await get_json(f"{services['matching']}/matches/summary")
        return data

    try:
        async with httpx.AsyncClient(timeout=10) as http:
            school = PartnerProducer(
                partner_config(secrets, settings, SCHOOL), broker, topics, http
            )
            jgz = PartnerProducer(partner_config(secrets, settings, JGZ), broker, topics, http)
            await school.send_file(school_csv, today=today)
            await jgz.send_file(jgz_csv, today=today)

            async def both_matches() -> bool:
                s = await summary()
                return (s["open_matches"], s["open_family_matches"]) == (2, 1)

            await eventually(both_matches, timeout=60)

            async def told() -> bool:
                alerts = await get_json(f"{services['notification']}/alerts/summary")
                return bool(alerts["open_matches"] == 2)

            await eventually(told, timeout=60)
            conn = await asyncpg.connect(settings.database_url)
            try:
                # The child's person match is sealed under the child's own key.
                (person_subject,) = await conn.fetch(
                    "SELECT subject FROM notification.matches WHERE kind = 'person'"
                )
                person_subject = person_subject["subject"]
            finally:
                await conn.close()
            request = export(tmp_path / "erase.csv", [{"child_bsn": child}])
            # A partner that never registered the child asks for its erasure: nothing of
            # another's goes, no review is asked, nothing tells it whether others did.
            gp = PartnerProducer(partner_config(secrets, settings, GP), broker, topics, http)
            await gp.erase_file(request)
            conn = await asyncpg.connect(settings.database_url)
            try:

                async def refused_for_want_of_its_own() -> bool:
                    return bool(
                        await conn.fetchval(
                            "SELECT count(*) FROM audit.entries WHERE object_type ="
                            " 'erasure-request' AND outcome = 'failed' AND actor_id = 'matching'"
                        )
                    )

                await eventually(refused_for_want_of_its_own, timeout=60)
            finally:
                await conn.close()
            assert (await summary())["registrations"] == 3
            (request_id,) = (await school.erase_file(request)).request_ids

            # The school's request ends the school's registration only: the JGZ's of the
            # child stays, readable, and so does the child's data key. Both matches
            # dissolve: only one organisation (JGZ) is left in them.
            async def own_erased() -> bool:
                s = await summary()
                return (s["open_matches"], s["registrations"]) == (0, 2)

            await eventually(own_erased, timeout=60)
            officer = auth(settings, "fg-mira", Role.PRIVACY_OFFICER)
            erasures = f"{services['audit']}/audit/v1/erasures"

            async def listed() -> list[dict[str, object]]:
                found: list[dict[str, object]] = (await get_json(erasures, headers=officer))[
                    "requests"
                ]
                return found

            (pending,) = await eventually(listed, timeout=30)
            assert pending["request_id"] == str(request_id)
            assert pending["subject"] == person_subject
            assert (pending["partner_id"], pending["ended"]) == (SCHOOL, 1)
            assert pending["organisations_remaining"] == 1
            conn = await asyncpg.connect(settings.database_url)
            try:
                kept = await conn.fetch(
                    "SELECT partner_id FROM matching.registrations WHERE subject = $1",
                    person_subject,
                )
                assert [r["partner_id"] for r in kept] == [JGZ]
                assert await keys_fetchval(
                    settings,
                    "SELECT count(*) FROM keystore.data_keys WHERE subject = $1",
                    person_subject,
                )
            finally:
                await conn.close()

            # Neither a partner's worker nor a JGT worker may decide; the officer may.
            for someone in (
                auth(settings, "juf-anouk", Role.WORKER),
                auth(settings, "jgt-sanne", Role.TEAM_LEAD),
            ):
                refused = await http.post(
                    f"{erasures}/{request_id}/decision", json={"approve": True}, headers=someone
                )
                assert refused.status_code == 403
            approved = await http.post(
                f"{erasures}/{request_id}/decision", json={"approve": True}, headers=officer
            )
            assert approved.status_code == 200, approved.text
            assert approved.json()["status"] == "approved"
            again = await http.post(
                f"{erasures}/{request_id}/decision",
                json={"approve": False, "reason": "te laat"},
                headers=officer,
            )
            assert again.status_code == 409

            async def erased() -> bool:
                s = await summary()
                return (s["open_matches"], s["registrations"]) == (0, 1)

            await eventually(erased, timeout=60)
    finally:
        await broker.stop()
    conn = await asyncpg.connect(settings.database_url)
    try:
        subjects = await conn.fetch("SELECT DISTINCT subject FROM matching.registrations")
        assert len(subjects) == 1  # the sibling's registration stays

        # The child's data key goes (shredded just after matching's transaction), the
        # sibling's stays.
        async def one_key_left() -> bool:
            # (Subjects' keys only: the trend window's key is kept there too.)
            left = await keys_fetchval(
                settings, "SELECT count(*) FROM keystore.data_keys WHERE subject NOT LIKE '%:%'"
            )
            return bool(left == 1)

        await eventually(one_key_left, timeout=30)
        nodes = await conn.fetchval(
            "SELECT count(*) FROM matching.family_nodes WHERE node LIKE 's:%'"
        )
        assert nodes == 1

        # The family match was sealed under the family's own key, not a child's, and that
        # key went with the erased child: its contacts in the family match are unreadable
        # everywhere, although the sibling's key stays.
        raised = [
            MatchRaised.model_validate_json(r.value)
            for r in await read_all(settings, topics.matches)
        ]
        (family,) = [m for m in raised if m.kind.value == "family"]
        # The family's events are keyed by the cluster's random id: not a pseudonym's
        # name or hash, nothing computable from the family's members without a key.
        rows = await conn.fetch("SELECT node, cluster FROM matching.family_nodes")
        names = {r["node"] for r in rows}
        assert {r["cluster"] for r in rows} == {family.key}
        assert family.key not in names | {sha256(n.encode()).hexdigest() for n in names}
        remaining = await conn.fetch("SELECT subject FROM matching.registrations")
        assert family.subject not in {person_subject, *(r["subject"] for r in remaining)}
        assert not await keys_fetchval(
            settings, "SELECT count(*) FROM keystore.data_keys WHERE subject = $1", family.subject
        )

        # Notification forgets the child too: its match, the alerts about it, the tasks;
        # the family match ends when its dissolution arrives (keyed by the family, it may
        # come after the erasure).
        async def forgotten() -> bool:
            left = await conn.fetchval(
                "SELECT (SELECT count(*) FROM notification.matches WHERE subject = $1)"
                " + (SELECT count(*) FROM notification.alerts WHERE $1 = ANY(subjects))"
                " + (SELECT count(*) FROM notification.match_parties WHERE subject = $1)",
                person_subject,
            )
            open_matches = (await get_json(f"{services['notification']}/alerts/summary"))[
                "open_matches"
            ]
            return bool(left == 0 and open_matches == 0)

        await eventually(forgotten, timeout=30)
        assert await conn.fetchval("SELECT count(*) FROM notification.forgotten_matches") >= 1
        anouk = await get_json(
            f"{services['notification']}/api/alerts",
            headers=auth(settings, "juf-anouk", Role.WORKER),
        )
        assert all(a["kind"] != "person" for a in anouk["alerts"])
        # Nothing of it was dead-lettered: late events of the forgotten match change nothing.
        summary_after = await get_json(f"{services['notification']}/alerts/summary")
        assert summary_after["open_matches"] == 0
    finally:
        await conn.close()
