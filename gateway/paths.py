"""Where the shipped configuration lives."""

from __future__ import annotations

from pathlib import Path


def default_config_dir() -> Path:
    """The repository's ``config/`` folder (the package is installed editable from a checkout)."""
    return Path(__file__).resolve().parent.parent / "config"
