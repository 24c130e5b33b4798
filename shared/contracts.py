"""Event contracts: the only definition of every wire format, its version and its topic.

Every message on Kafka is one of these pydantic models serialised as JSON. A consumer
that receives bytes it cannot decode into the expected model sends them to the
dead-letter topic with a `DeadLetter` describing why.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

SCHEMA_VERSION: Final = 1


def is_valid_bsn(value: str) -> bool:
    """The elfproef: nine digits, weights 9..2 and -1, the sum divisible by 11, not 0."""
    if len(value) != 9 or not value.isdigit() or value == "000000000":
        return False
    weights = (9, 8, 7, 6, 5, 4, 3, 2, -1)
    return sum(int(d) * w for d, w in zip(value, weights, strict=True)) % 11 == 0


Pseudonym = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-f]{64}$"),
    Field(description="A 256-bit pseudonym, lowercase hex. Never a BSN."),
]
PartnerId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
WijkCode = Annotated[
    str, StringConstraints(pattern=r"^WK\d{6}$"), Field(description="CBS wijk code")
]


AgeLimitMonth = Annotated[
    str,
    StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2])$"),
    Field(
        description="The month (YYYY-MM) in which the youth turns 23; never a day: a day "
        "is the date of birth shifted by 23 years"
    ),
]


def month_start(month: str) -> date:
    """The first day of a YYYY-MM month: registrations end there (policy rule 5)."""
    year, number = month.split("-")
    return date(int(year), int(number), 1)


# The age whose month an AgeLimitMonth names: the law's limit, whatever a policy sets.
AGE_LIMIT_MONTH_AGE = 23


def age_limit_start(age_limit_month: str, age_limit_years: int) -> date:
    """The first day of the month the youth turns `age_limit_years`, from the month they
    turn 23 (AgeLimitMonth): where a policy's age limit ends a registration."""
    start = month_start(age_limit_month)
    return start.replace(year=start.year + age_limit_years - AGE_LIMIT_MONTH_AGE)


def age_limit_month_of(limit_start: date, age_limit_years: int) -> str:
    """The AgeLimitMonth (the month the youth turns 23) back from `age_limit_start`."""
    return month_of(
        limit_start.replace(year=limit_start.year + AGE_LIMIT_MONTH_AGE - age_limit_years)
    )


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


# Printable text only: control characters (NUL above all) have no place in a name or id,
# and PostgreSQL refuses NUL, which would make a message fail on every redelivery.
# Nor the invisible characters that make one name look like another, or turn the text
# around it (zero-width marks and joiners, bidirectional embeddings, overrides, isolates).
NOT_TEXT = "\x00-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff"
Text = Annotated[str, StringConstraints(pattern=f"^[^{NOT_TEXT}]*$")]
_DATE_PARTS = re.compile(
    r"(?<![0-9])([0-9]{1,4})[^0-9A-Za-z]{1,3}([0-9]{1,2})[^0-9A-Za-z]{1,3}([0-9]{1,4})(?![0-9])"
)
_MONTHS = {
    "jan": 1, "feb": 2, "maa": 3, "mrt": 3, "mar": 3, "apr": 4, "mei": 5, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "okt": 10, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_NAMED_MONTH = re.compile(
    r"(?<![0-9])([0-9]{1,2})[^0-9A-Za-z]{0,3}(" + "|".join(_MONTHS) + r")[A-Za-z]*\.?"
    r"[^0-9A-Za-z]{0,3}([0-9]{2}|[0-9]{4})(?![0-9])",
    re.IGNORECASE,
)


def _plain(value: str) -> str:
    """`value` in compatibility form (full-width, circled, super- and subscript digits as
    digits), every decimal digit of any script as its ASCII one."""
    return "".join(
        str(unicodedata.decimal(c)) if unicodedata.category(c) == "Nd" else c
        for c in unicodedata.normalize("NFKC", value)
    )


def digit_runs(value: str) -> list[str]:
    """The runs of digits in a free text as a BSN could hide in it: every kind of decimal
    digit read as its value, letters ending a run, and anything else (spaces, dots,
    dashes, slashes, commas, underscores) dropped from between digits."""
    runs, run = [], ""
    for char in _plain(value):
        if "0" <= char <= "9":
            run += char
        elif unicodedata.category(char)[0] in "LM":  # a letter ends a run
            if run:
                runs.append(run)
            run = ""
    if run:
        runs.append(run)
    return runs


def holds_bsn(value: str) -> bool:
    """Whether a free text holds a number that passes the elfproef: a run of eight or nine
    digits (eight: a BSN that lost its leading zero), or nine digits within a longer run;
    or a number sign that is no plain digit (a dingbat, an Ethiopic digit), which could
    hide one."""
    if any(unicodedata.category(c) in ("No", "Nl") for c in unicodedata.normalize("NFKC", value)):
        return True
    for run in digit_runs(value):
        if len(run) in (8, 9) and is_valid_bsn(run.zfill(9)):
            return True
        if len(run) > 9 and any(is_valid_bsn(run[i : i + 9]) for i in range(len(run) - 8)):
            return True
    return False


def _is_day(year: int, month: int, day: int) -> bool:
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def _two_digit_year(day: int, month: int, year: int) -> bool:
    return _is_day(2000 + year, month, day) or _is_day(1900 + year, month, day)


def holds_date(value: str) -> bool:
    """Whether a free text holds a day (a date of birth in any notation): year, month and
    day with separators in either order (2015-05-12, 12/5/2015, 12.05.15), a month by its
    name (3 mei 2015, 12 May 15), or six or eight digits that are one (120515, 150512,
    20150512, 12052015)."""
    text = _plain(value)
    for first, middle, last in _DATE_PARTS.findall(text):
        f, m, la = int(first), int(middle), int(last)
        if len(first) == 4 and len(last) <= 2 and _is_day(f, m, la):
            return True
        if len(first) <= 2 and len(last) == 4 and _is_day(la, m, f):
            return True
        if len(first) <= 2 and len(last) == 2 and _two_digit_year(f, m, la):
            return True
    for day, month, year in _NAMED_MONTH.findall(text):
        number = _MONTHS[month.lower()]
        if len(year) == 4 and _is_day(int(year), number, int(day)):
            return True
        if len(year) == 2 and _two_digit_year(int(day), number, int(year)):
            return True
    for run in digit_runs(value):
        if len(run) == 8:
            if 1900 <= int(run[:4]) <= 2099 and _is_day(int(run[:4]), int(run[4:6]), int(run[6:])):
                return True
            if 1900 <= int(run[4:]) <= 2099 and _is_day(int(run[4:]), int(run[2:4]), int(run[:2])):
                return True
        if len(run) == 6:
            a, b, c = int(run[:2]), int(run[2:4]), int(run[4:])
            if _two_digit_year(a, b, c) or _two_digit_year(c, b, a):
                return True
    return False


def not_a_bsn(value: str) -> str:
    """A free-text field that would carry a BSN is refused: no BSN leaves the partner.
    Every kind of digit is read as one, and whatever stands between digits but a letter
    is dropped; then every run of eight or nine digits that passes the elfproef (eight: a
    BSN that lost its leading zero), and every nine digits within a longer run, counts
    as one (see holds_bsn)."""
    if holds_bsn(value):
        raise ValueError("holds a number that passes the elfproef, like a BSN; never send one")
    return value


def not_a_day(value: str) -> str:
    """A free-text field that would carry a date (of birth, in any form) is refused."""
    if holds_date(value):
        raise ValueError("holds a date, perhaps of birth; never send one")
    return value


def utcnow() -> datetime:
    return datetime.now(UTC)


class Category(StrEnum):
    """Themes of concern. Only ever used for anonymous wijk aggregates."""

    ARMOEDE = "armoede"
    COMPLEXE_SCHEIDING = "complexe_scheiding"
    HUISELIJK_GEWELD = "huiselijk_geweld"
    SCHOOLVERZUIM = "schoolverzuim"
    JONGERENPROBLEMATIEK = "jongerenproblematiek"
    OVERGEWICHT = "overgewicht"
    TAALACHTERSTAND = "taalachterstand"
    OPVOEDVRAGEN = "opvoedvragen"
    PESTEN = "pesten"
    EERSTE_1000_DAGEN = "eerste_1000_dagen"


class OrganisationCategory(StrEnum):
    """Kinds of organisation that may hold a covenant with the municipality."""

    JEUGDHULP = "jeugdhulp"
    VEILIG_THUIS = "veilig_thuis"
    JGZ = "jgz"
    HUISARTS = "huisarts"
    ONDERWIJS = "onderwijs"
    LEERPLICHT = "leerplicht"
    POLITIE = "politie"
    WELZIJN = "welzijn"
    SCHULDHULP = "schuldhulp"
    KINDEROPVANG = "kinderopvang"


class Contract(BaseModel):
    """Base of every event: immutable, strict about unknown fields, explicitly versioned.

    A contract whose wire format changes overrides `schema_version` with its new number;
    `decode` refuses any other version with a reason naming the one it reads."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The field whose value is the event's Kafka key: events that must stay in order
    # share it (the same subject, match key, wijk). Every contract names its own; a unit
    # test holds each to it.
    partition_by: ClassVar[str]

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    def partition_key(self) -> bytes:
        return str(getattr(self, type(self).partition_by)).encode()

    @classmethod
    def version(cls) -> int:
        return int(cls.model_fields["schema_version"].default)

    @classmethod
    def upgrades(cls) -> Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]]:
        """Earlier versions this one still reads, each with how it becomes this one."""
        return {}


# A worker's phone number as a registration carries it (digits, spaces, brackets, dashes).
PHONE_PATTERN = r"^\+?[0-9 ()-]{6,20}$"


class WorkerContact(BaseModel):
    """How to reach the professional behind a registration: that information, never what."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    worker_id: Annotated[Text, StringConstraints(min_length=1, max_length=64)]
    display_name: Annotated[Text, StringConstraints(min_length=1, max_length=120)]
    email: Annotated[
        str, StringConstraints(pattern=r"^[^@\s]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,}$")
    ]
    phone: Annotated[str, StringConstraints(pattern=PHONE_PATTERN)] | None = None


PartnerReference = Annotated[
    Text,
    StringConstraints(min_length=1, max_length=64, strip_whitespace=True),
    AfterValidator(not_a_bsn),
    AfterValidator(not_a_day),
    Field(
        description="The partner's own case or dossier number for this registration: "
        "shown only to that organisation's workers, sealed everywhere else. Never a BSN "
        "or a date."
    ),
]


class SignalRegistered(Contract):
    """What a partner organisation sends on its own topic `signals.<partner>`.

    Every pseudonym is the partner's VOPRF output; the message is signed (Ed25519) over
    its exact bytes, the signature travelling in the `vs-key-id` and `vs-signature` headers.
    Version 2: the month the youth turns 23 replaces version 1's day (`age_cutoff`).
    Version 3: the partner's own `reference` (optional).
    """

    partition_by: ClassVar[str] = "subject"

    schema_version: Literal[3] = 3  # type: ignore[assignment]

    @classmethod
    def upgrades(cls) -> Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]]:
        # A version 2 signal is a version 3 signal without a reference.
        return {2: lambda old: {**old, "schema_version": 3}}

    def to_bytes(self) -> bytes:
        """Version 2 when there is no reference: a partner may update its producer
        before the municipality updates intake (which then reads it as before)."""
        if self.reference is None:
            earlier = {**self.model_dump(mode="json", exclude={"reference"}), "schema_version": 2}
            return json.dumps(earlier, separators=(",", ":")).encode()
        return super().to_bytes()

    partner_id: PartnerId
    subject: Pseudonym
    parents: list[Pseudonym] = Field(default_factory=list, max_length=4)
    household: Pseudonym | None = None
    organisation: Annotated[Text, StringConstraints(min_length=1, max_length=120)]
    worker: WorkerContact
    category: Category
    wijk: WijkCode
    registered_at: AwareDatetime
    age_limit_month: AgeLimitMonth
    sent_at: AwareDatetime = Field(default_factory=utcnow)
    reference: PartnerReference | None = None


Sealed = Annotated[
    str,
    StringConstraints(pattern=r"^v1\.[A-Za-z0-9+/=]+$"),
    Field(description="AES-256-GCM under the subject's data key, the event id as AAD"),
]


class SealedSignal(BaseModel):
    """The personal fields of an accepted signal, sealed under the subject's data key."""

    # Sealed inside an event that is versioned itself: a field a later release adds is
    # passed over here, so a rollback does not strand what that release sealed.
    model_config = ConfigDict(frozen=True, extra="ignore")

    worker: WorkerContact
    wijk: WijkCode
    parents: list[Pseudonym] = Field(default_factory=list, max_length=4)
    household: Pseudonym | None = None
    reference: PartnerReference | None = None
    partner_registration: uuid.UUID | None = Field(
        default=None,
        description="the event id the partner's producer gave this registration: the "
        "number its own receipts know (the registration id is intake's, keyed)",
    )


class WithdrawalReason(StrEnum):
    RESOLVED = "resolved"  # the risk is gone: the registration is archived
    UNJUSTIFIED = "unjustified"  # it should not have been made: not archived, shredded


class SignalWithdrawn(Contract):
    """A partner withdraws one of its registrations (on its own topic, signed like a
    SignalRegistered, with the header `vs-event-type: SignalWithdrawn`)."""

    partition_by: ClassVar[str] = "subject"

    partner_id: PartnerId
    withdraws: uuid.UUID = Field(description="event_id of the SignalRegistered it withdraws")
    subject: Pseudonym = Field(description="the partner pseudonym, for the message key")
    reason: WithdrawalReason
    sent_at: AwareDatetime = Field(default_factory=utcnow)


class ErasureRequested(Contract):
    """A partner passes on a data subject's request for erasure (AVG art. 17), signed, with
    the header `vs-event-type: ErasureRequested`."""

    partition_by: ClassVar[str] = "subject"

    partner_id: PartnerId
    subject: Pseudonym = Field(description="the partner pseudonym")
    sent_at: AwareDatetime = Field(default_factory=utcnow)


class SubjectReportRequested(Contract):
    """A partner passes on a data subject's access request (AVG art. 15), signed, with the
    header `vs-event-type: SubjectReportRequested`; the BSN never leaves the partner."""

    partition_by: ClassVar[str] = "subject"

    partner_id: PartnerId
    subject: Pseudonym = Field(description="the partner pseudonym")
    sent_at: AwareDatetime = Field(default_factory=utcnow)


class SubjectReportRequest(Contract):
    """Intake's word to audit: report what the log holds about this subject."""

    partition_by: ClassVar[str] = "subject"

    request_id: uuid.UUID
    subject: Pseudonym = Field(description="the matching-domain pseudonym")
    partner_id: PartnerId
    requested_at: AwareDatetime = Field(default_factory=utcnow)


class SubjectErased(Contract):
    """Intake's word to matching that a partner passed on a data subject's request for
    erasure: the registrations of *that partner* end (not archived). Other
    organisations' registrations stay until the privacy officer approves erasing the
    subject as a whole (`SubjectErasureApproved`). Version 2: version 1 erased the
    subject as a whole on any one partner's word."""

    partition_by: ClassVar[str] = "subject"

    schema_version: Literal[2] = 2  # type: ignore[assignment]
    request_id: uuid.UUID = Field(description="intake's id of the partner's request")

    @classmethod
    def upgrades(cls) -> Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]]:
        # A version 1 request still in flight at the upgrade is one partner's request
        # too, and now ends that partner's registrations only.
        def from_1(old: dict[str, Any]) -> dict[str, Any]:
            kept = {k: v for k, v in old.items() if k != "registrations"}
            return {**kept, "schema_version": 2, "request_id": old.get("event_id")}

        return {1: from_1}

    subject: Pseudonym = Field(description="the matching-domain pseudonym")
    partner_id: PartnerId
    requested_at: AwareDatetime = Field(default_factory=utcnow)


class ErasureReviewRequested(Contract):
    """Matching's word to audit: a partner's erasure request ended its own registrations,
    but other organisations' registrations of the subject remain. Erasing those too is
    the privacy officer's decision (listed on the privacy officer's page and in the CLI).
    Counts only: which organisations, and what they registered, stay in matching."""

    partition_by: ClassVar[str] = "subject"

    request_id: uuid.UUID = Field(description="the SubjectErased request it follows")
    subject: Pseudonym = Field(description="the matching-domain pseudonym")
    partner_id: PartnerId = Field(description="the partner that passed the request on")
    requested_at: AwareDatetime
    ended: int = Field(ge=0, description="registrations of that partner that ended")
    organisations_remaining: int = Field(ge=1)


class SubjectErasureApproved(Contract):
    """The privacy officer approved erasing a subject as a whole (audit to matching):
    every registration of every organisation ends and the subject's data key is shredded."""

    partition_by: ClassVar[str] = "subject"

    request_id: uuid.UUID = Field(description="the erasure request it decides")
    subject: Pseudonym = Field(description="the matching-domain pseudonym")
    approved_by: Annotated[Text, StringConstraints(min_length=1, max_length=64)]
    approved_at: AwareDatetime = Field(default_factory=utcnow)


class SubjectShredded(Contract):
    """A subject's data key was shredded (erasure, nothing of the subject kept any more,
    or an operator's `keystore shred`): every opened copy of its sealed fields must go.
    Matching tells notification on every path that shreds; the keystore tool tells
    matching, which then ends what is left of the subject and tells notification."""

    partition_by: ClassVar[str] = "subject"

    subject: Pseudonym = Field(description="the matching-domain pseudonym")
    reason: Annotated[Text, StringConstraints(min_length=1, max_length=200)]
    registrations: list[uuid.UUID] = Field(
        default_factory=list, description="the subject's registrations that went"
    )
    shredded_at: AwareDatetime = Field(default_factory=utcnow)


class RegistrationWithdrawn(Contract):
    """Intake's word to matching that a registration was withdrawn by its partner."""

    partition_by: ClassVar[str] = "subject"

    registration_id: uuid.UUID
    subject: Pseudonym = Field(description="the matching-domain pseudonym")
    partner_id: PartnerId
    reason: WithdrawalReason
    withdrawn_at: AwareDatetime = Field(default_factory=utcnow)


class SignalAccepted(Contract):
    """A signal that passed the intake gateway, stripped of everything matching doesn't need.

    Its personal fields (worker, wijk, family links) travel sealed: shredding the
    subject's data key erases every copy of them. Version 2: the month of the age limit.
    """

    partition_by: ClassVar[str] = "subject"

    schema_version: Literal[2] = 2  # type: ignore[assignment]

    signal_id: uuid.UUID = Field(
        description="the registration id: intake's keyed id of the partner's event id"
    )
    partner_id: PartnerId
    subject: Pseudonym = Field(description="the matching-domain pseudonym (re-keyed)")
    organisation: str
    organisation_category: OrganisationCategory
    registered_at: AwareDatetime
    age_limit_month: AgeLimitMonth
    sealed: Sealed = Field(description="a SealedSignal")
    accepted_at: AwareDatetime = Field(default_factory=utcnow)


class WijkTrendRaised(Contract):
    """A theme rises clearly above its own baseline in a wijk: for the wijk's team lead."""

    partition_by: ClassVar[str] = "wijk"

    wijk: WijkCode
    theme: Category
    window: str
    distinct_children: int = Field(ge=0)
    baseline: float = Field(ge=0)
    p_value: float = Field(ge=0, le=1)
    test: str
    policy_version: str


class WijkThemeCounted(Contract):
    """How many distinct children a wijk x theme week counts so far: an aggregate, never
    one signal. Intake counts (it alone sees the theme next to a child's pseudonym) and
    publishes the cells that changed on a schedule, shuffled, on `aggregates.wijk-theme`;
    matching republishes them for the team leads' chart. Only cells of at least k
    children ever leave intake (rule 12): nothing under k travels anywhere."""

    partition_by: ClassVar[str] = "wijk"

    wijk: WijkCode
    theme: Category
    window: str
    distinct_children: int = Field(ge=0)
    policy_version: str


class MatchKind(StrEnum):
    PERSON = "person"
    FAMILY = "family"


class MatchParticipant(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    registration_id: uuid.UUID
    organisation: str


class MatchContact(BaseModel):
    """One registration of a match as notification needs it: whom to contact, at which
    organisation, whether that organisation may coordinate, and the subject's age limit
    (to address the family-informing task by age). Never the reason."""

    # Sealed inside an event that is versioned itself: a field a later release adds is
    # passed over here, so a rollback does not strand what that release sealed.
    model_config = ConfigDict(frozen=True, extra="ignore")

    registration_id: uuid.UUID
    subject: Pseudonym = Field(
        description="whose registration it is: what notification does and shows about it "
        "goes in that subject's access report, and goes when that subject is erased"
    )
    worker: WorkerContact
    organisation: Annotated[Text, StringConstraints(min_length=1, max_length=120)]
    organisation_category: OrganisationCategory
    age_limit_month: AgeLimitMonth | None = Field(
        default=None,
        description="The month the subject turns 23, to address the informing task by age",
    )
    registered_at: AwareDatetime | None = None
    reference: PartnerReference | None = None
    partner_registration: uuid.UUID | None = None


MatchKeyText = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class SealedMatch(BaseModel):
    """The personal fields of a match, sealed under the subject's data key (a person
    match) or the family cluster's (a family match)."""

    # Sealed inside an event that is versioned itself: a field a later release adds is
    # passed over here, so a rollback does not strand what that release sealed.
    model_config = ConfigDict(frozen=True, extra="ignore")

    wijk: WijkCode
    contacts: list[MatchContact] = Field(min_length=1)
    family: MatchKeyText | None = Field(
        default=None,
        description="Opaque key of the subject's family cluster, to keep one coordinator",
    )


MatchKey = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-f]{64}$"),
    Field(description="the subject (person match) or an opaque family-cluster key"),
]
SealedUnder = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-f]{64}$"),
    Field(
        description="whose data key seals `sealed`: the subject (a person match), or the "
        "family cluster's current key, a random name that identifies no one (a family "
        "match; replaced whenever a child of the family is erased)"
    ),
]


class MatchRaised(Contract):
    """Two or more organisations are concerned about the same subject (person match) or
    about children of one family (family match). `subject` is whose data key seals it.

    Version 2: a family match is sealed under its family cluster's key, and each contact
    names its registration's subject (inside the seal)."""

    partition_by: ClassVar[str] = "key"

    schema_version: Literal[2] = 2  # type: ignore[assignment]
    match_id: uuid.UUID
    kind: MatchKind
    key: MatchKey
    subject: SealedUnder
    participants: list[MatchParticipant] = Field(min_length=2)
    sealed: Sealed = Field(description="a SealedMatch: the wijk and whom to contact")
    rule: str = Field(description="The rule that fired, for the explanation of the decision")
    policy_version: str
    raised_at: AwareDatetime = Field(default_factory=utcnow)


class MatchJoined(Contract):
    """New registrations joined an open match; everyone involved hears of the newcomers.

    Version 2: as MatchRaised's."""

    partition_by: ClassVar[str] = "key"

    schema_version: Literal[2] = 2  # type: ignore[assignment]
    match_id: uuid.UUID
    kind: MatchKind
    key: MatchKey
    subject: SealedUnder
    newcomers: list[uuid.UUID] = Field(min_length=1, description="registration ids")
    participants: list[MatchParticipant] = Field(min_length=2)
    sealed: Sealed = Field(description="a SealedMatch of every participant")
    rule: str
    policy_version: str
    joined_at: AwareDatetime = Field(default_factory=utcnow)


class MatchDissolved(Contract):
    """A match no longer holds (withdrawal, expiry, the age limit, erasure, a merge)."""

    partition_by: ClassVar[str] = "key"

    match_id: uuid.UUID
    kind: MatchKind
    key: MatchKey
    reason: str
    remaining: list[uuid.UUID] = Field(description="registration ids still active")
    rule: str
    policy_version: str
    dissolved_at: AwareDatetime = Field(default_factory=utcnow)


class MatchLeft(Contract):
    """Registrations of a match ended (withdrawn, expired, erased) while the match goes
    on: their workers are no longer party to it."""

    partition_by: ClassVar[str] = "key"

    match_id: uuid.UUID
    kind: MatchKind
    key: MatchKey
    left: list[uuid.UUID] = Field(min_length=1, description="registration ids")
    remaining: list[uuid.UUID] = Field(min_length=1, description="registration ids")
    rule: str
    policy_version: str
    left_at: AwareDatetime = Field(default_factory=utcnow)


class CoordinationTransferred(Contract):
    """A registration in another wijk moved coordination to that wijk's team (rule 9)."""

    partition_by: ClassVar[str] = "key"

    match_id: uuid.UUID
    kind: MatchKind
    key: MatchKey
    subject: SealedUnder
    sealed: Sealed = Field(description="a SealedTransfer: from and to wijk")
    rule: str
    policy_version: str
    transferred_at: AwareDatetime = Field(default_factory=utcnow)


class EarlierInvolvementNoticed(Contract):
    """Rule 6: a new registration on a subject with archived registrations gets a one-time
    notice that there was earlier involvement, and of which organisations."""

    partition_by: ClassVar[str] = "subject"

    registration_id: uuid.UUID
    subject: Pseudonym
    sealed: Sealed = Field(description="a SealedNotice: whom to tell, which organisations")
    noticed_at: AwareDatetime = Field(default_factory=utcnow)


class SealedNotice(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    worker: WorkerContact
    organisation: str
    earlier_organisations: list[str] = Field(min_length=1)


class SealedTransfer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    from_wijk: WijkCode
    to_wijk: WijkCode


class AlertIssued(Contract):
    """That an alert went to a recipient, for other systems to count and follow: ids
    only. Whom to contact stays in the inbox, so nothing on this topic needs shredding."""

    partition_by: ClassVar[str] = "match_id"

    alert_id: uuid.UUID
    match_id: uuid.UUID | None = Field(description="None for an earlier-involvement notice")
    kind: MatchKind
    occasion: Literal[
        "raised", "joined", "transferred", "reassigned", "dissolved", "earlier", "escalation"
    ] = "raised"
    part: str = Field(default="registrant", description="why the recipient is told")
    recipient_id: Annotated[Text, StringConstraints(min_length=1, max_length=64)]
    issued_at: AwareDatetime = Field(default_factory=utcnow)


class AuditAction(StrEnum):
    CREATE = "create"
    READ = "read"
    UPDATE = "update"
    DELETE = "delete"
    SEARCH = "search"
    EXPORT = "export"
    ASSIGN = "assign"
    NOTIFY = "notify"
    SHRED = "shred"
    LOGIN = "login"
    POLICY_CHANGE = "policy-change"
    REJECT = "reject"


class AuditOutcome(StrEnum):
    SUCCESS = "success"
    DENIED = "denied"
    FAILED = "failed"


class AuditActor(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    actor_id: str
    role: str
    organisation: str | None = None


class AuditEvent(Contract):
    """One entry of the access log, in the spirit of NEN 7513. No BSN, name or category."""

    partition_by: ClassVar[str] = "subjects"

    def partition_key(self) -> bytes:
        """Its first subject's (the order of one person's log entries), else its kind."""
        return (self.subjects[0] if self.subjects else self.object_type).encode()

    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    action: AuditAction
    outcome: AuditOutcome
    actor: AuditActor
    on_behalf_of: str | None = None
    subjects: list[Pseudonym] = Field(default_factory=list)
    object_type: str
    object_id: str | None = None
    source_system: str
    source_instance: str
    purpose: str
    trace_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")


class TreeHeadSigned(Contract):
    """A signed head of the audit log's Merkle tree, published so copies exist outside
    the audit database. The signature (Ed25519) covers context, size, time and root."""

    partition_by: ClassVar[str] = "event_id"

    size: int = Field(ge=0)
    root: str = Field(pattern=r"^[0-9a-f]{64}$")
    signed_at: AwareDatetime
    key_id: str
    signature: str = Field(pattern=r"^[0-9a-f]{128}$")


class DeadLetter(Contract):
    """A message a consumer could not process: the reason, where it came from, its size and
    a keyed digest. Never the original in clear (it may hold a theme next to a person):
    that is kept only sealed to the dead-letter key, for the partner to get it back.
    Version 2: version 1 kept the original bytes in clear."""

    partition_by: ClassVar[str] = "event_id"

    schema_version: Literal[2] = 2  # type: ignore[assignment]
    source_topic: str
    source_partition: int
    source_offset: int
    consumer: str
    reason_code: str
    reason: str
    partner_id: PartnerId | None = Field(
        default=None, description="the partner whose topic the message came from"
    )
    original_size: int = Field(ge=0, description="length of the original value in bytes")
    original_digest: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="HMAC-SHA256 of the original value under the dead-letter digest key",
    )
    original_sealed: str | None = Field(
        default=None,
        description="base64 of the original key and value (cut at the size limit), sealed "
        "with HPKE (RFC 9180: X25519, HKDF-SHA256, AES-128-GCM) to the key `sealed_to`",
    )
    sealed_to: str | None = Field(default=None, description="the dead-letter key id")
    original_truncated: bool = Field(
        default=False, description="only the first bytes are sealed: the message was oversized"
    )
    failed_at: AwareDatetime = Field(default_factory=utcnow)


CONTRACTS: tuple[type[Contract], ...] = (
    SignalRegistered,
    SignalWithdrawn,
    ErasureRequested,
    SignalAccepted,
    RegistrationWithdrawn,
    SubjectErased,
    ErasureReviewRequested,
    SubjectErasureApproved,
    SubjectShredded,
    SubjectReportRequested,
    SubjectReportRequest,
    MatchRaised,
    MatchJoined,
    MatchDissolved,
    MatchLeft,
    CoordinationTransferred,
    EarlierInvolvementNoticed,
    WijkTrendRaised,
    WijkThemeCounted,
    TreeHeadSigned,
    AlertIssued,
    AuditEvent,
    DeadLetter,
)


C = TypeVar("C", bound=Contract)


SEALED_PAYLOADS: tuple[type[BaseModel], ...] = (
    SealedSignal,
    SealedMatch,
    SealedTransfer,
    SealedNotice,
)


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of every contract, keyed by file name."""
    models: tuple[type[BaseModel], ...] = (*CONTRACTS, *SEALED_PAYLOADS)
    return {
        f"{model.__name__}.v{_version(model)}.json": model.model_json_schema(mode="serialization")
        for model in models
    }


def _version(model: type[BaseModel]) -> int:
    return model.version() if issubclass(model, Contract) else SCHEMA_VERSION


def export_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = directory / name
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


class Topics:
    """Every topic name and what its messages are keyed by, in one place.

    Messages about one subject share a key so that they stay in order on one partition.
    """

    PARTNER_PREFIX = "signals."
    ACCEPTED = "signals.accepted"
    WIJK_THEMES = "aggregates.wijk-theme"
    TRENDS = "trends"
    MATCHES = "matches"
    MATCH_LIFECYCLE = "matches.lifecycle"
    ALERTS = "alerts"
    AUDIT_PREFIX = "audit.events."
    # Each process writes its audit events to a topic of its own (and may write no
    # other's): the audit service knows who wrote an entry from the topic it came on.
    AUDIT_SOURCES = ("pseudonymiser", "intake", "matching", "notification", "audit")
    TREE_HEADS = "audit.tree-heads"
    AUDIT_REQUESTS = "audit.requests"
    ERASURES_APPROVED = "erasures.approved"
    DEADLETTER = "deadletter"

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def name(self, topic: str) -> str:
        return f"{self.prefix}{topic}"

    def partner(self, partner_id: str) -> str:
        return self.name(f"{self.PARTNER_PREFIX}{partner_id}")

    def partner_id_of(self, topic: str) -> str | None:
        head = self.name(self.PARTNER_PREFIX)
        rest = topic.removeprefix(head)
        internal = self.ACCEPTED.removeprefix(self.PARTNER_PREFIX)
        return rest if rest != topic and "." not in rest and rest != internal else None

    @property
    def accepted(self) -> str:
        return self.name(self.ACCEPTED)

    @property
    def wijk_themes(self) -> str:
        return self.name(self.WIJK_THEMES)

    @property
    def trends(self) -> str:
        return self.name(self.TRENDS)

    @property
    def matches(self) -> str:
        return self.name(self.MATCHES)

    @property
    def match_lifecycle(self) -> str:
        return self.name(self.MATCH_LIFECYCLE)

    @property
    def alerts(self) -> str:
        return self.name(self.ALERTS)

    def audit_of(self, service: str) -> str:
        """The audit topic only `service` writes."""
        if service not in self.AUDIT_SOURCES:
            raise ValueError(f"{service!r} writes no audit events; one of {self.AUDIT_SOURCES}")
        return self.name(f"{self.AUDIT_PREFIX}{service}")

    @property
    def audits(self) -> list[str]:
        return [self.audit_of(s) for s in self.AUDIT_SOURCES]

    def audit_source_of(self, topic: str) -> str | None:
        """Which service's audit topic `topic` is (None: not an audit topic)."""
        source = topic.removeprefix(self.name(self.AUDIT_PREFIX))
        return source if source != topic and source in self.AUDIT_SOURCES else None

    @property
    def audit_requests(self) -> str:
        return self.name(self.AUDIT_REQUESTS)

    @property
    def erasures_approved(self) -> str:
        return self.name(self.ERASURES_APPROVED)

    @property
    def tree_heads(self) -> str:
        return self.name(self.TREE_HEADS)

    @property
    def deadletter(self) -> str:
        return self.name(self.DEADLETTER)

    def internal(self) -> list[str]:
        return [
            self.accepted,
            self.wijk_themes,
            self.matches,
            self.match_lifecycle,
            self.trends,
            self.alerts,
            *self.audits,
            self.tree_heads,
            self.audit_requests,
            self.erasures_approved,
            self.deadletter,
        ]


# Partners choose their event ids; scoping them by partner keeps two partners' ids apart.
PARTNER_SCOPE = uuid.UUID("0c6f3f0e-8d0a-4f55-9b8e-3f6b2d1c7a41")


def scoped_id(partner_id: str, event_id: uuid.UUID) -> uuid.UUID:
    """The id intake gives a partner's data-subject request downstream. Only for ids
    that are random at the partner (uuid4): an id derived from content must be keyed."""
    return uuid.uuid5(PARTNER_SCOPE, f"{partner_id}/{event_id}")


def keyed_id(key: bytes, *parts: str) -> uuid.UUID:
    """An id derived from `parts` that no one can compute, or test a guess against,
    without `key`: HMAC-SHA256, its first 128 bits in the UUIDv8 layout (RFC 9562).

    Every id derived from a pseudonym, a theme or any other content is made so: an
    unkeyed hash of them lets anyone who can make a pseudonym test whether a child is
    registered, and for which theme, by recomputing the id."""
    if len(key) < 32:
        raise ValueError("an id key must be at least 32 bytes")
    digest = bytearray(hmac.new(key, "\x1f".join(parts).encode(), hashlib.sha256).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x80  # version 8: vendor-defined
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 9562 variant
    return uuid.UUID(bytes=bytes(digest))


def partition_key(event: Contract) -> bytes:
    """The Kafka key of an event (its contract's `partition_by`)."""
    return event.partition_key()


class ContractError(ValueError):
    """Bytes that are not a valid event of the expected contract.

    `code` is machine-readable (for the dead-letter record and the metrics); `reason`
    tells the sending party what is wrong and how to fix it, without echoing values.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


# Bounds on what a message may hold before anything but the JSON scanner sees it: no
# contract nests deeper than a few levels or needs a number of more than a few digits,
# and a hostile message must cost no more to refuse than a valid one to read.
MAX_DEPTH = 16
MAX_NUMBER_CHARS = 32
_SURROGATE = re.compile("[\ud800-\udfff]")


def _number(convert: Callable[[str], float]) -> Callable[[str], object]:
    def parse(literal: str) -> object:
        if len(literal) > MAX_NUMBER_CHARS:
            raise ContractError(
                "number-too-long",
                f"a number of {len(literal)} characters; no field takes more than "
                f"{MAX_NUMBER_CHARS}",
            )
        number = convert(literal)
        if not math.isfinite(number):
            raise ContractError("number-out-of-range", "a number beyond the largest float")
        return number

    return parse


def _no_constant(name: str) -> object:
    raise ContractError("malformed-json", f"{name} is not JSON; send numbers as numbers")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    made: dict[str, Any] = {}
    for key, value in pairs:
        if key in made:
            # Which of two values counts would depend on the reader: refused, not guessed.
            raise ContractError("duplicate-key", "a key appears twice in one object")
        made[key] = value
    return made


def parse_bounded(raw: bytes) -> Any:
    """JSON within bounds, or ContractError: valid UTF-8 without lone surrogates, at most
    MAX_DEPTH levels, number literals of at most MAX_NUMBER_CHARS, no NaN or Infinity,
    no key twice in an object."""
    try:
        data = json.loads(
            raw,
            parse_int=_number(int),
            parse_float=_number(float),
            parse_constant=_no_constant,
            object_pairs_hook=_object,
        )
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "bad encoding"
        raise ContractError(
            "malformed-json", f"the body is not valid UTF-8 JSON ({detail})"
        ) from None
    except RecursionError:
        raise ContractError(
            "too-deep", f"the JSON nests deeper than {MAX_DEPTH} levels; no event does"
        ) from None
    pending: list[tuple[Any, int]] = [(data, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise ContractError(
                "too-deep", f"the JSON nests deeper than {MAX_DEPTH} levels; no event does"
            )
        if isinstance(node, dict):
            pending.extend((k, depth + 1) for k in node)
            pending.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            pending.extend((v, depth + 1) for v in node)
        elif isinstance(node, str) and _SURROGATE.search(node):
            # A lone surrogate (escaped \\ud800) is no character: it breaks every later
            # encoding of the text, in the database and on the next topic.
            raise ContractError("invalid-unicode", "a string holds a lone surrogate escape")
    return data


_FIELD_NAME = re.compile(r"[A-Za-z_]{1,40}")


def _where(err: Any) -> str:
    """An error's field. An unknown field's name is the sender's text: named only when
    it looks like a field name (letters, at most 40), never a number or a pseudonym."""
    loc = [str(p) for p in err["loc"]]
    if err["type"] == "extra_forbidden" and loc and not _FIELD_NAME.fullmatch(loc[-1]):
        loc[-1] = "(an unknown field)"
    return ".".join(loc) or "(root)"


def decode(model: type[C], raw: bytes | None, *, max_bytes: int) -> C:
    """Decode and validate one message, or raise ContractError naming the problem."""
    if raw is None or not raw:
        raise ContractError("empty", "the message has no body; send one JSON object")
    if len(raw) > max_bytes:
        raise ContractError(
            "oversized",
            f"the message is {len(raw)} bytes, the limit is {max_bytes}; "
            "send one event per message",
        )
    data = parse_bounded(raw)
    if not isinstance(data, dict):
        raise ContractError("malformed-json", "the body must be a JSON object")
    version = data.get("schema_version")
    upgrade_from = model.upgrades().get(version) if isinstance(version, int) else None
    if upgrade_from is not None:
        data = upgrade_from(data)
        version = data.get("schema_version")
    if version != model.version():
        upgrade = (
            "; upgrade the partner producer (version 1 sent a day derived from the date of "
            "birth, version 2 only the month the youth turns 23)"
            if model is SignalRegistered and version == 1
            else ""
        )
        raise ContractError(
            "schema-version",
            f"schema_version {version!r} is not supported; this service reads version "
            f"{model.version()} of {model.__name__}{upgrade}",
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_where(err)}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        )
        raise ContractError("invalid", f"{model.__name__} is invalid: {problems}") from None
