"""Rule-file errors: a ``ConfigError`` that also names the rule id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from gateway.config import ConfigError
from gateway.config.errors import format_key_path

_CONDITION_TAGS = frozenset({"match", "threshold", "sequence", "absence", "duration"})


@dataclass(frozen=True)
class RuleError(ConfigError):
    rule_id: str = ""

    def __str__(self) -> str:
        if self.rule_id:
            return f"{self.file}: rule {self.rule_id}: {self.key_path}: {self.message}"
        return super().__str__()


def _clean(loc: tuple[str | int, ...]) -> list[str | int]:
    out: list[str | int] = []
    for i, part in enumerate(loc):
        if isinstance(part, str) and (
            part.startswith(("function-", "list[", "dict[", "union["))
            or (i > 0 and loc[i - 1] == "condition" and part in _CONDITION_TAGS)
        ):
            continue
        out.append(part)
    return out


def rule_id_at(data: Any, index: int) -> str:
    try:
        value = data["rules"][index]["id"]
    except (KeyError, IndexError, TypeError):
        return ""
    return value if isinstance(value, str) else ""


def from_validation(exc: ValidationError, file: str, data: Any) -> list[ConfigError]:
    """Pydantic errors → RuleErrors with file, rule id (when inside ``rules[i]``) and key path."""
    errors: list[ConfigError] = []
    for err in exc.errors(include_url=False):
        loc = _clean(err["loc"])
        msg = "unknown key (typo?)" if err["type"] == "extra_forbidden" else err["msg"]
        msg = msg.removeprefix("Value error, ")
        rule_id = ""
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            rule_id = rule_id_at(data, loc[1])
        errors.append(RuleError(file, format_key_path(loc), msg, rule_id))
    return errors
