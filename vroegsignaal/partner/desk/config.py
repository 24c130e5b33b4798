"""The desk's own configuration (YAML): which partners it registers for, the wijken a
worker chooses from and, where a partner allows it, the postcode areas that give the
wijk. It holds no secret itself: each partner's keys stay in that partner's file."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.config import parse_yaml_model
from shared.contracts import WijkCode
from shared.i18n import _
from vroegsignaal.partner.config import PartnerConfig, PartnerConfigError

POSTCODE_AREA = re.compile(r"^[1-9][0-9]{3}$")


class DeskConfigError(ValueError):
    """The desk's configuration is broken; the message names the field and the fix."""


class Wijk(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: WijkCode
    name: str = Field(min_length=1, max_length=80)


class DeskPartner(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    config: Path = Field(description="The partner's own configuration (partner producer).")
    postcode_lookup: bool = Field(
        default=False,
        description="Whether this partner's workers may find the wijk from a postcode (in "
        "their browser: the postcode is never sent).",
    )


class DeskConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    partners: list[DeskPartner] = Field(min_length=1)
    wijken: list[Wijk] = Field(min_length=1, description="The wijken a worker chooses from.")
    postcodes: Path | None = Field(
        default=None,
        description="CSV of postcode area (the four digits) and wijk code, for the partners "
        "that allow a postcode lookup.",
    )
    inbox_url: str | None = Field(
        default=None,
        description="The municipality's inbox (notification) base URL: which registrations "
        "are part of a case is asked there, with the worker's own token.",
    )
    evaluations_per_worker_per_day: int = Field(
        default=50,
        ge=1,
        le=10_000,
        description="Pseudonymisations one worker may ask for in a day: the desk is no "
        "oracle for turning lists of BSNs into pseudonyms.",
    )

    keep_days: int = Field(
        default=400,
        ge=1,
        le=3650,
        description="How long the desk keeps a registration's record for its worker (to "
        "see and withdraw it): past the registration's own period at the municipality.",
    )

    @field_validator("wijken")
    @classmethod
    def _distinct(cls, wijken: list[Wijk]) -> list[Wijk]:
        codes = [w.code for w in wijken]
        if len(set(codes)) != len(codes):
            raise ValueError(_("wijken lists a wijk code twice"))
        return wijken

    @model_validator(mode="after")
    def _postcodes_when_asked(self) -> DeskConfig:
        if any(p.postcode_lookup for p in self.partners) and self.postcodes is None:
            raise ValueError(
                _("a partner has postcode_lookup: true, but postcodes (the CSV file) is not set")
            )
        return self

    @classmethod
    def load(cls, path: Path) -> DeskConfig:
        try:
            text = path.read_text()
        except OSError as exc:
            raise DeskConfigError(
                _("cannot read desk configuration {path}: {problem}").format(path=path, problem=exc)
            ) from None
        config = parse_yaml_model(cls, text, source=str(path), error=DeskConfigError)
        # Relative paths are the configuration file's neighbours, wherever it runs from.
        return config.model_copy(
            update={
                "partners": [
                    p.model_copy(update={"config": path.parent / p.config}) for p in config.partners
                ],
                "postcodes": path.parent / config.postcodes if config.postcodes else None,
            }
        )

    def partner_configs(self) -> list[tuple[PartnerConfig, bool]]:
        """Each partner's own configuration and whether it allows the postcode lookup; one
        organisation per partner (the token's organisation claim picks it)."""
        loaded = []
        for partner in self.partners:
            try:
                loaded.append((PartnerConfig.load(partner.config), partner.postcode_lookup))
            except PartnerConfigError as exc:
                raise DeskConfigError(str(exc)) from None
        names = [c.organisation for c, _allowed in loaded]
        if len(set(names)) != len(names):
            raise DeskConfigError(
                _("two partners of the desk have the same organisation name: each needs its own")
            )
        return loaded

    def postcode_areas(self) -> dict[str, str]:
        """Postcode area -> wijk code, from the CSV (`postcode,wijk`, a header line)."""
        if self.postcodes is None:
            return {}
        known = {w.code for w in self.wijken}
        areas: dict[str, str] = {}
        try:
            with self.postcodes.open(encoding="utf-8-sig", newline="") as handle:
                for line, row in enumerate(csv.DictReader(handle), start=2):
                    area = (row.get("postcode") or "").strip()
                    wijk = (row.get("wijk") or "").strip()
                    if not POSTCODE_AREA.match(area):
                        raise DeskConfigError(
                            _(
                                "{path} line {line}: postcode is not a postcode area (four "
                                "digits, like 1234)"
                            ).format(path=self.postcodes, line=line)
                        )
                    if wijk not in known:
                        raise DeskConfigError(
                            _("{path} line {line}: wijk {wijk} is not among wijken").format(
                                path=self.postcodes, line=line, wijk=wijk
                            )
                        )
                    areas[area] = wijk
        except OSError as exc:
            raise DeskConfigError(
                _("cannot read postcodes {path}: {problem}").format(
                    path=self.postcodes, problem=exc
                )
            ) from None
        return areas
