"""Configuration errors that say exactly where and what."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError


def format_key_path(loc: Sequence[str | int]) -> str:
    """``("mappings", 0, "type")`` → ``mappings[0].type``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


@dataclass(frozen=True)
class ConfigError:
    file: str
    key_path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key_path}: {self.message}"


class ConfigErrors(Exception):
    """One or more configuration errors; ``str()`` lists them one per line."""

    def __init__(self, errors: Iterable[ConfigError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))

    @classmethod
    def from_validation(
        cls, exc: ValidationError, file: str | Path, prefix: Sequence[str | int] = ()
    ) -> ConfigErrors:
        errors = []
        for err in exc.errors(include_url=False):
            # Drop pydantic's union/discriminator tags from the path: they are not keys.
            loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key (typo?)"
            errors.append(ConfigError(str(file), format_key_path([*prefix, *loc]), msg))
        return cls(errors)
