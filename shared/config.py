"""The one way a configuration file is read: YAML validated by a pydantic model, every
mistake reported as `file:line: field: problem (allowed: ...)`, so whoever edits the file
can fix it without reading code. The policy, the roster, the partners, the webhooks, the
demo users, a partner's configuration and the key files all come through here."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

M = TypeVar("M", bound=BaseModel)


def load_yaml_model(
    model: type[M], path: Path, *, error: type[Exception] = ValueError, what: str
) -> M:
    """`path` read and validated by `model`; `what` names the file for the reader
    ("the webhooks file (VS_WEBHOOKS_FILE)")."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    return parse_yaml_model(model, text, source=str(path), error=error)


def parse_yaml_model(
    model: type[M], text: str, *, source: str, error: type[Exception] = ValueError
) -> M:
    """A YAML configuration file validated by `model`; every mistake with its line."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        # Never str(exc): it quotes the broken line, which may hold a key or a secret.
        # Where the broken construct began (an unclosed quote's line), else the problem.
        mark = exc.context_mark or exc.problem_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        what = "; ".join(p for p in (exc.context, exc.problem) if p)
        raise error(f"{where}: not valid YAML: {what}") from None
    except yaml.YAMLError:
        raise error(f"{source}: not valid YAML") from None
    if not isinstance(data, dict):
        raise error(f"{source}: expected a mapping of settings")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        # Never the input: a key file's or a webhook's secret must not reach a log.
        for err in exc.errors(include_url=False, include_input=False):
            loc = tuple(err["loc"])
            field = ".".join(str(p) for p in loc) or "(top level)"
            line = _line_of(root, loc)
            problems.append(f"{source}:{line}: {field}: {_message(err)}{_allowed(err)}")
        raise error("\n".join(problems)) from None


def each_once(names: Sequence[str], what: str) -> None:
    """Refuse a file that lists one name twice: which entry counts would be a guess."""
    twice = sorted({n for n in names if list(names).count(n) > 1})
    if twice:
        raise ValueError(f"{what} {', '.join(map(repr, twice))} appears more than once")


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key; check its spelling (the documentation lists every key)"
    if err["type"] in ("model_type", "dict_type"):
        return "expected a mapping of keys and values"
    if err["type"] in ("enum", "literal_error"):
        return "not one of the allowed values"
    return str(err["msg"]).removeprefix("Value error, ")


def _allowed(err: Any) -> str:
    ctx = err.get("ctx") or {}
    if "expected" in ctx:
        return f" (allowed: {ctx['expected']})"
    return ""


def _line_of(node: Any, loc: tuple[Any, ...]) -> int:
    """The 1-based line of the deepest part of `loc` present in the YAML node tree."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if k.value == str(part)), None)
            key = next((k for k, v in node.value if k.value == str(part)), None)
            if found is None:
                return line
            line = (key or found).start_mark.line + 1
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


Name = Annotated[str, BeforeValidator(str), StringConstraints(min_length=1)]


def _hex_32(value: object) -> str:
    text = str(value)
    try:
        length = len(bytes.fromhex(text))
    except ValueError:
        length = -1
    if length != 32:
        raise ValueError("must be 64 hex characters (32 bytes)")
    return text


Hex32 = Annotated[str, BeforeValidator(_hex_32)]


class VersionedKeys(BaseModel):
    """A key file that rotates: `current: <version>` and `keys: {<version>: <hex>}`, as
    'vroegsignaal secrets init' writes them (the KEK, the gateway's re-keying key,
    intake's private keys, the pseudonymiser's OPRF seeds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: dict[Name, Hex32]
    current: Name  # after keys: its check reads them

    @field_validator("current")
    @classmethod
    def _current_is_listed(cls, current: str, info: ValidationInfo) -> str:
        return _listed(current, info, "keys")

    def key_bytes(self) -> dict[str, bytes]:
        return {version: bytes.fromhex(value) for version, value in self.keys.items()}


class PublicKeys(BaseModel):
    """Public keys by version, as the municipality hands them to a partner: the
    pseudonymiser's (to verify each evaluation) and intake's (to seal events to)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    public_keys: dict[Name, Hex32] = Field(min_length=1)
    current: Name  # after public_keys: its check reads them

    @field_validator("current")
    @classmethod
    def _current_is_listed(cls, current: str, info: ValidationInfo) -> str:
        return _listed(current, info, "public_keys")


def _listed(current: str, info: ValidationInfo, field: str) -> str:
    """The current version is one of the file's keys (checked once those are valid)."""
    if field in info.data and current not in info.data[field]:
        raise ValueError(f"current key {current!r} is not in {field}")
    return current


class NamedKey(BaseModel):
    """A key file of one key and its id: `key_id` and `private_key` (64 hex), as
    'vroegsignaal secrets init' writes the audit signing key and the dead-letter
    operator's key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: Name
    private_key: Hex32
