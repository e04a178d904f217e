"""Load YAML files into strict pydantic models."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from gateway.config.errors import ConfigError, ConfigErrors

M = TypeVar("M", bound=BaseModel)


def load_yaml(path: Path) -> Any:
    """Parse one YAML file (safe loader); syntax errors become a ConfigErrors naming the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigErrors([ConfigError(str(path), "<file>", f"cannot read: {exc}")]) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = "<file>"
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f"line {mark.line + 1}, column {mark.column + 1}"
        raise ConfigErrors([ConfigError(str(path), where, f"invalid YAML: {exc}")]) from exc


def load_model(model: type[M], path: Path, data: Any = None) -> M:
    """Validate ``data`` (or the file's YAML) against ``model``; errors carry file and key path."""
    if data is None:
        data = load_yaml(path)
    if data is None:
        data = {}
    try:
        return model.model_validate(data, context={"file": str(path), "base_dir": path.parent})
    except ValidationError as exc:
        raise ConfigErrors.from_validation(exc, path) from exc
