"""The partner producer: validated rows in, signed pseudonymised signals out.

Per batch of rows: pseudonymise every BSN and household id through the VOPRF, build
`SignalRegistered` (the month the youth turns 23, never a day; no name of the child),
sign its exact bytes with the partner's Ed25519 key, publish it on the partner's topic
with an idempotent producer. Each source row gets a stable event id, so sending the
same file again changes nothing downstream.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import hmac
import io
import os
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from faststream.kafka import KafkaBroker

from shared.contracts import (
    Category,
    Contract,
    ErasureRequested,
    SignalRegistered,
    SignalWithdrawn,
    SubjectReportRequested,
    Topics,
    WithdrawalReason,
    WorkerContact,
    keyed_id,
    scoped_id,
)
from shared.envelope import SEALED_TO_HEADER, public_key_of, seal
from shared.i18n import _
from vroegsignaal.partner.bsn import is_valid_bsn
from vroegsignaal.partner.config import PartnerConfig
from vroegsignaal.partner.digests import DigestSet
from vroegsignaal.partner.pseudonymise import Pseudonymiser, bsn_input, household_input
from vroegsignaal.partner.rows import RejectedRow, RowError, SourceRow, read_rows, validate


@dataclass
class Summary:
    sent: int = 0
    rejected: int = 0
    duplicates: int = 0
    already_sent: int = 0  # sent by an earlier run of the same file (its journal)
    rejects: list[RejectedRow] = field(default_factory=list)
    request_ids: list[uuid.UUID] = field(default_factory=list)


def event_id(id_key: bytes, partner_id: str, row: SourceRow, child: str) -> uuid.UUID:
    """Stable per source row, so a re-sent file changes nothing; keyed with the
    partner's own id key, so that no one else can compute it from a pseudonym and a
    theme (never from the BSN either: a hash of a BSN is reversed by trying all 10^9)."""
    return keyed_id(
        id_key,
        "registration",
        partner_id,
        child,
        row.registered_at.isoformat(),
        row.category.value,
        row.worker.worker_id,
        row.wijk,
    )


def row_digest(id_key: bytes, row: SourceRow) -> str:
    """A keyed hash of a row's fields (the partner's id key): it recognises the row
    again, and no one without the key can test a guessed BSN against it."""
    fields = (
        row.child_bsn,
        ",".join(row.parent_bsns),
        row.household_id or "",
        row.age_limit_month,
        row.category.value,
        row.wijk,
        row.registered_at.isoformat(),
        row.worker.model_dump_json(),
    )
    mac = hmac.new(id_key, b"journal\x1f" + "\x1f".join(fields).encode(), "sha256")
    return mac.hexdigest()[:32]


class Journal:
    """Which rows of a file Kafka has acknowledged, kept at the partner beside the file: a
    re-run after a crash sends only what is missing and says what was sent before. A row
    is known by its keyed hash: the journal holds no BSN."""

    def __init__(self, path: Path, id_key: bytes) -> None:
        self.path = path
        self._key = id_key
        # Compact (some tens of MB for 10^6 rows). Only what earlier runs sent: a row
        # repeated within this run is a duplicate, not "sent before".
        self._earlier = DigestSet()
        if path.exists():
            with path.open("rb") as lines:
                last = b"\n"
                for line in lines:
                    last = line
                    # A line torn by a crash mid-write is no row: that row goes again,
                    # and intake knows it by its event id.
                    if len(line.strip()) == 32 and all(c in HEX for c in line.strip()):
                        self._earlier.add(bytes.fromhex(line.strip().decode()))
            if not last.endswith(b"\n"):
                _append(path, "\n")  # the next line starts on its own

    def digest(self, row: SourceRow) -> str:
        return row_digest(self._key, row)

    def __contains__(self, row: SourceRow) -> bool:
        return bytes.fromhex(self.digest(row)) in self._earlier

    def record(self, rows: Sequence[SourceRow]) -> None:
        """After Kafka acknowledged `rows`: on disk before the next batch goes."""
        _append(self.path, "".join(self.digest(r) + "\n" for r in rows))


HEX = frozenset(b"0123456789abcdef")


RECEIPT_FIELDS = ("registration", "export", "line", "row", "registered_at", "reference")


class Receipts:
    """The partner's own record of what it registered, at the partner only: for each
    registration sent, its number (the event id, which the inbox shows the partner's
    workers), the export and line it came from, the row's keyed hash and the partner's
    reference. `vroegsignaal partner lookup` answers from it which row a registration
    in the inbox was. No BSN is in it."""

    def __init__(self, path: Path | None, id_key: bytes) -> None:
        self.path = path
        self._key = id_key

    def open(self) -> None:
        """Make the file (its header) before anything is sent: a place that cannot be
        written stops the run before the first row goes, not after."""
        if self.path is not None and not self.path.exists():
            lines = io.StringIO()
            csv.writer(lines).writerow(RECEIPT_FIELDS)
            _append(self.path, lines.getvalue())

    def record(self, export: str, sent: Sequence[tuple[SourceRow, uuid.UUID]]) -> None:
        if not sent or self.path is None:  # a configuration not read from a file
            return
        self.open()
        lines = io.StringIO()
        writer = csv.writer(lines)
        for row, registration in sent:
            writer.writerow(
                [
                    str(registration),
                    export,
                    row.line,
                    row_digest(self._key, row),
                    row.registered_at.isoformat(),
                    row.reference or "",
                ]
            )
        _append(self.path, lines.getvalue())

    def find(self, registration: uuid.UUID) -> list[dict[str, str]]:
        """Every receipt of `registration` (one, or several if its file was sent again
        from another copy)."""
        if self.path is None or not self.path.exists():
            return []
        with self.path.open(newline="", encoding="utf-8") as handle:
            return [r for r in csv.DictReader(handle) if r.get("registration") == str(registration)]


def _append(path: Path, text: str) -> None:
    """Appended and on disk before the caller goes on (a crash loses no acknowledged row);
    made readable by its owner only."""
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())


@dataclass(frozen=True)
class Pseudonyms:
    """One row's pseudonyms: the child's, the parents', the household's."""

    child: str
    parents: list[str]
    household: str | None


class PartnerProducer:
    def __init__(
        self,
        config: PartnerConfig,
        broker: KafkaBroker,
        topics: Topics,
        http: httpx.AsyncClient,
    ) -> None:
        self._config = config
        self._broker = broker
        self._topic = topics.partner(config.partner_id)
        self._pseudonymiser = Pseudonymiser(config.pseudonymiser, http)
        self._key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(config.signing_key))
        intake = config.intake_keys
        self._intake_key_id = intake.current
        self._intake_key = public_key_of(intake.public_keys[intake.current])
        self._id_key = bytes.fromhex(config.id_key)
        self._seen = DigestSet()  # the registrations this producer sent

    async def send_rows(
        self, rows: Sequence[SourceRow], summary: Summary
    ) -> list[tuple[SourceRow, uuid.UUID]]:
        """Pseudonymise, sign and publish one batch of validated rows; the rows published
        (not those this run had sent already), each with its registration number."""
        return await self.publish_rows(rows, await self.pseudonymise_rows(rows), summary)

    async def pseudonymise_rows(self, rows: Sequence[SourceRow]) -> list[Pseudonyms]:
        """Each row's child, parents and household as pseudonyms, in order (in requests
        within the pseudonymiser's limit)."""
        inputs: list[bytes] = []
        for row in rows:
            inputs.append(bsn_input(row.child_bsn))
            inputs.extend(bsn_input(p) for p in row.parent_bsns)
            if row.household_id:
                inputs.append(household_input(row.household_id))
        made = iter(await self._pseudonymiser.pseudonyms(inputs))
        return [
            Pseudonyms(
                child=next(made),
                parents=[next(made) for _ in row.parent_bsns],
                household=next(made) if row.household_id else None,
            )
            for row in rows
        ]

    async def publish_rows(
        self, rows: Sequence[SourceRow], named: Sequence[Pseudonyms], summary: Summary
    ) -> list[tuple[SourceRow, uuid.UUID]]:
        """Sign and publish pseudonymised rows; once Kafka acknowledged them all, the rows
        published (not those this run had sent already), each with its registration
        number."""
        sent_at = datetime.now(UTC)
        publishing = []
        sent: list[tuple[SourceRow, uuid.UUID]] = []
        for row, pseudonyms in zip(rows, named, strict=True):
            child = pseudonyms.child
            signal = self.signal(
                event_id(self._id_key, self._config.partner_id, row, child),
                pseudonyms,
                worker=row.worker,
                category=row.category,
                wijk=row.wijk,
                registered_at=row.registered_at,
                age_limit_month=row.age_limit_month,
                sent_at=sent_at,
                reference=row.reference,
            )
            if signal.event_id.bytes in self._seen:
                summary.duplicates += 1
                continue
            self._seen.add(signal.event_id.bytes)
            publishing.append(self._publish(signal, child))
            sent.append((row, signal.event_id))
        # Sent together, acknowledged together; the producer keeps per-key order.
        await asyncio.gather(*publishing)
        summary.sent += len(publishing)
        return sent

    @property
    def config(self) -> PartnerConfig:
        return self._config

    @property
    def pseudonymiser(self) -> Pseudonymiser:
        return self._pseudonymiser

    def signal(
        self,
        registration: uuid.UUID,
        pseudonyms: Pseudonyms,
        *,
        worker: WorkerContact,
        category: Category,
        wijk: str,
        registered_at: datetime,
        age_limit_month: str,
        sent_at: datetime,
        reference: str | None,
    ) -> SignalRegistered:
        """The registration `registration` of this partner, as it goes on its topic."""
        return SignalRegistered(
            event_id=registration,
            partner_id=self._config.partner_id,
            subject=pseudonyms.child,
            parents=pseudonyms.parents,
            household=pseudonyms.household,
            organisation=self._config.organisation,
            worker=worker,
            category=category,
            wijk=wijk,
            registered_at=registered_at,
            age_limit_month=age_limit_month,
            sent_at=sent_at,
            reference=reference,
        )

    def withdrawal(
        self, registration: uuid.UUID, child: str, reason: WithdrawalReason
    ) -> SignalWithdrawn:
        """The withdrawal of one of this partner's registrations, of the child `child`:
        one event per registration, whatever the reason (a second try with the other reason
        is the same event, and intake takes the first)."""
        return SignalWithdrawn(
            event_id=keyed_id(self._id_key, "withdrawal", child, str(registration)),
            partner_id=self._config.partner_id,
            withdraws=registration,
            subject=child,
            reason=reason,
        )

    async def send(self, event: Contract, child: str) -> None:
        """Seal, sign and publish one event; returns once Kafka acknowledged it."""
        await self._publish(event, child)

    def _publish(self, event: Contract, child: str) -> Awaitable[object]:
        """Seal the event to intake, sign the sealed bytes as sent, publish it keyed by
        the child's pseudonym (so one child's events keep their order)."""
        sealed = seal(self._intake_key, self._intake_key_id, event.to_bytes())
        return self._broker.publish(
            sealed,
            self._topic,
            key=child.encode(),
            headers={
                "content-type": "application/octet-stream",
                "vs-event-type": type(event).__name__,
                "vs-key-id": self._config.signing_key_id,
                "vs-signature": base64.b64encode(self._key.sign(sealed)).decode(),
                SEALED_TO_HEADER: self._intake_key_id,
            },
        )

    async def withdraw_rows(
        self, rows: Sequence[SourceRow], reason: WithdrawalReason, summary: Summary
    ) -> None:
        """Withdraw the registrations these rows once made (the same stable event ids)."""
        children = await self._pseudonymiser.pseudonyms([bsn_input(r.child_bsn) for r in rows])
        sending = []
        for row, child in zip(rows, children, strict=True):
            withdrawal = SignalWithdrawn(
                event_id=keyed_id(self._id_key, "withdrawal", reason.value, child, str(row.line)),
                partner_id=self._config.partner_id,
                withdraws=event_id(self._id_key, self._config.partner_id, row, child),
                subject=child,
                reason=reason,
            )
            sending.append(self._publish(withdrawal, child))
        await asyncio.gather(*sending)
        summary.sent += len(sending)

    async def withdraw_file(self, path: Path, reason: WithdrawalReason, *, today: date) -> Summary:
        summary = Summary()
        rows = []
        for line, raw in read_rows(path):
            try:
                rows.append(validate(line, raw, today=today))
            except RowError as problem:
                summary.rejected += 1
                summary.rejects.append(RejectedRow(line, str(problem)))
        for start in range(0, len(rows), self._config.batch_size):
            await self.withdraw_rows(rows[start : start + self._config.batch_size], reason, summary)
        return summary

    async def erase_file(self, path: Path) -> Summary:
        """Pass on erasure requests for the children in a file (column child_bsn only)."""
        return await self._per_child(path, ErasureRequested)

    async def request_reports(self, path: Path) -> Summary:
        """Pass on access requests for the children in a file (column child_bsn only)."""
        return await self._per_child(path, SubjectReportRequested)

    async def _per_child(
        self, path: Path, request: type[ErasureRequested] | type[SubjectReportRequested]
    ) -> Summary:
        summary = Summary()
        bsns = []
        for line, raw in read_rows(path):
            bsn = str(raw.get("child_bsn") or "").strip()
            if is_valid_bsn(bsn):
                bsns.append(bsn)
            else:
                summary.rejected += 1
                summary.rejects.append(RejectedRow(line, "child_bsn is not a valid BSN"))
        for start in range(0, len(bsns), self._config.batch_size):
            chunk = bsns[start : start + self._config.batch_size]
            children = await self._pseudonymiser.pseudonyms([bsn_input(b) for b in chunk])
            sending = []
            for child in children:
                event = request(partner_id=self._config.partner_id, subject=child)
                summary.request_ids.append(scoped_id(self._config.partner_id, event.event_id))
                sending.append(self._publish(event, child))
            await asyncio.gather(*sending)
            summary.sent += len(sending)
        return summary

    def receipts(self) -> Receipts:
        return Receipts(self._config.receipts_file, self._id_key)

    def journal(self, path: Path) -> Journal:
        """The journal of the export at `path` (`<export>.sent`, beside it)."""
        return Journal(path.with_name(path.name + ".sent"), self._id_key)

    async def send_file(
        self,
        path: Path,
        *,
        today: date,
        on_progress: Callable[[int], None] = lambda _: None,
        journal: Journal | None = None,
    ) -> Summary:
        """Send an export, in batches; with a journal, only the rows no earlier run has
        had acknowledged (those count as already sent). Each registration sent gets its
        receipt."""
        summary = Summary()
        batch: list[SourceRow] = []
        receipts = self.receipts()
        receipts.open()
        # Pipelined: a batch is pseudonymised while the one before is on its way to Kafka,
        # and recorded (receipts, journal) only once Kafka acknowledged it, in file order.
        on_its_way: asyncio.Task[None] | None = None

        async def publish(rows: list[SourceRow], named: list[Pseudonyms]) -> None:
            sent = await self.publish_rows(rows, named, summary)
            receipts.record(path.name, sent)
            if journal is not None:
                journal.record(rows)
            on_progress(len(rows))

        async def flush() -> None:
            nonlocal on_its_way
            rows = list(batch)
            batch.clear()
            try:
                named = await self.pseudonymise_rows(rows)
            finally:
                if on_its_way is not None:
                    await on_its_way  # its failure stops the run before anything later goes
            on_its_way = asyncio.create_task(publish(rows, named))
            await asyncio.sleep(0)  # on its way now, not after the next batch is read

        try:
            for line, raw in read_rows(path):
                try:
                    row = validate(line, raw, today=today)
                except RowError as problem:
                    summary.rejected += 1
                    summary.rejects.append(RejectedRow(line, str(problem)))
                    continue
                if journal is not None and row in journal:
                    summary.already_sent += 1
                    on_progress(1)
                    continue
                batch.append(row)
                if len(batch) >= self._config.batch_size:
                    await flush()
            if batch:
                await flush()
        finally:
            if on_its_way is not None:
                await on_its_way
        return summary


def write_rejects(path: Path, rejects: Iterable[RejectedRow]) -> None:
    """line,reason per rejected row: enough to find and fix it, never its content."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow([_("line"), _("reason")])
        for reject in rejects:
            writer.writerow([reject.line, reject.reason])
