"""Load profiles from a folder, expanding named presets (``extends:``).

Layout::

    config/profiles/
      presets/*.yaml      # shared presets: {name: <partial mapping>, ...}
      *.yaml              # one profile per file
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from device_adapters.profiles.schema import Profile
from gateway.config.errors import ConfigError, ConfigErrors
from gateway.config.loader import load_yaml


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Dicts merge recursively; anything else in ``override`` replaces ``base``."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_presets(directory: Path) -> dict[str, dict[str, Any]]:
    presets: dict[str, dict[str, Any]] = {}
    errors: list[ConfigError] = []
    for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else []:
        data = load_yaml(path) or {}
        if not isinstance(data, dict):
            errors.append(
                ConfigError(str(path), "<root>", "presets file must be a mapping of name → preset")
            )
            continue
        for name, body in data.items():
            if not isinstance(body, dict):
                errors.append(ConfigError(str(path), str(name), "a preset must be a mapping"))
            elif name in presets:
                errors.append(ConfigError(str(path), str(name), "preset name defined twice"))
            else:
                presets[str(name)] = body
    if errors:
        raise ConfigErrors(errors)
    return presets


def _expand(
    mapping: dict[str, Any], presets: dict[str, dict[str, Any]], file: Path, where: str
) -> dict[str, Any]:
    names = mapping.pop("extends", [])
    if isinstance(names, str):
        names = [names]
    merged: dict[str, Any] = {}
    for name in names:
        if name not in presets:
            known = ", ".join(sorted(presets)) or "none"
            raise ConfigErrors(
                [
                    ConfigError(
                        str(file), f"{where}.extends", f"unknown preset {name!r} (known: {known})"
                    )
                ]
            )
        preset = dict(presets[name])
        preset.pop("extends", None)  # presets are flat: no chains to chase
        merged = deep_merge(merged, preset)
    return deep_merge(merged, mapping)


def load_profile(path: Path, shared_presets: dict[str, dict[str, Any]] | None = None) -> Profile:
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigErrors([ConfigError(str(path), "<root>", "a profile must be a mapping")])
    presets = dict(shared_presets or {})
    local = data.get("presets") or {}
    if isinstance(local, dict):
        presets.update({str(k): v for k, v in local.items() if isinstance(v, dict)})
    mappings = data.get("mappings")
    if isinstance(mappings, list):
        data = dict(data)
        data["mappings"] = [
            _expand(dict(m), presets, path, f"mappings[{i}]") if isinstance(m, dict) else m
            for i, m in enumerate(mappings)
        ]
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        raise ConfigErrors.from_validation(exc, path) from exc


def load_profiles(directory: Path) -> list[Profile]:
    """Every profile in ``directory``; all errors are collected before raising."""
    presets = load_presets(directory / "presets")
    profiles: list[Profile] = []
    errors: list[ConfigError] = []
    seen: dict[str, Path] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            profile = load_profile(path, presets)
        except ConfigErrors as exc:
            errors.extend(exc.errors)
            continue
        if profile.profile in seen:
            errors.append(
                ConfigError(
                    str(path),
                    "profile",
                    f"profile id {profile.profile!r} already used by {seen[profile.profile]}",
                )
            )
            continue
        seen[profile.profile] = path
        profiles.append(profile)
    if errors:
        raise ConfigErrors(errors)
    return profiles
