"""Load rule files (a directory of ``*.yaml`` or one file) into a validated ``RuleSet``.

Every problem is collected and raised together as ``ConfigErrors``; each names the file, the
rule id when there is one, the key path and the reason.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from gateway.config import ConfigError, ConfigErrors, load_yaml
from rules.errors import RuleError, from_validation
from rules.model import Rule, RuleFile, Selector
from rules.ruleset import CompiledRule, RuleSet, compile_rule
from rules.watchlist import Watchlist, WatchlistProvider, read_values

DEFAULT_TZ = "Asia/Shanghai"


def rule_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    raise ConfigErrors([ConfigError(str(path), "<file>", "no such file or directory")])


def _selectors(rule: Rule) -> list[tuple[str, Selector]]:
    cond = rule.condition
    out: list[tuple[str, Selector]] = []
    if cond.type == "sequence":
        out += [(f"condition.steps[{i}]", s) for i, s in enumerate(cond.steps)]
    elif cond.type == "duration":
        out += [("condition.start", cond.start), ("condition.end", cond.end)]
    else:
        out.append(("condition.when", cond.when))
    if rule.cancel is not None:
        out.append(("cancel.when", rule.cancel.when))
    return out


def _expr_lists(expr: str) -> list[str]:
    """Watch-list ids named as literals in ``in_list("id", …)`` calls."""
    names = []
    for node in ast.walk(ast.parse(expr.strip(), mode="eval")):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "in_list"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.append(node.args[0].value)
    return names


def _parse_files(paths: list[Path], errors: list[ConfigError]) -> list[tuple[Path, RuleFile]]:
    parsed = []
    for path in paths:
        try:
            data: Any = load_yaml(path)
        except ConfigErrors as exc:
            errors.extend(exc.errors)
            continue
        try:
            parsed.append((path, RuleFile.model_validate(data if data is not None else {})))
        except ValidationError as exc:
            errors.extend(from_validation(exc, str(path), data))
    return parsed


def _watchlists(
    files: list[tuple[Path, RuleFile]],
    provider: WatchlistProvider | None,
    errors: list[ConfigError],
) -> dict[str, Watchlist]:
    lists: dict[str, Watchlist] = {}
    for path, rf in files:
        for i, wl in enumerate(rf.watchlists):
            where = f"watchlists[{i}]"
            if wl.id in lists:
                errors.append(
                    ConfigError(str(path), f"{where}.id", f"watch list {wl.id!r} is defined twice")
                )
                continue
            values = list(wl.values)
            if wl.file is not None:
                file = wl.file if wl.file.is_absolute() else path.parent / wl.file
                try:
                    values += read_values(file)
                except (OSError, UnicodeDecodeError) as exc:
                    errors.append(
                        ConfigError(str(path), f"{where}.file", f"cannot read {file}: {exc}")
                    )
            if wl.provider:
                if provider is None:
                    errors.append(
                        ConfigError(
                            str(path),
                            f"{where}.provider",
                            "no watch-list provider is configured in this gateway",
                        )
                    )
                else:
                    try:
                        values += list(provider(wl.id))
                    except Exception as exc:
                        errors.append(
                            ConfigError(str(path), f"{where}.provider", f"provider failed: {exc}")
                        )
            lists[wl.id] = Watchlist.build(wl.id, values, upper=wl.normalize == "upper")
    return lists


def load_rules(
    path: Path, *, watchlist_provider: WatchlistProvider | None = None, timezone: str = DEFAULT_TZ
) -> RuleSet:
    """Validate and compile; raises ``ConfigErrors`` listing every problem found."""
    errors: list[ConfigError] = []
    paths = rule_files(path)
    files = _parse_files(paths, errors)
    lists = _watchlists(files, watchlist_provider, errors)
    tz = ZoneInfo(timezone)
    compiled: list[CompiledRule] = []
    owner: dict[str, Path] = {}
    for fpath, rf in files:
        for i, rule in enumerate(rf.rules):
            where = f"rules[{i}]"
            if rule.id in owner:
                errors.append(
                    RuleError(
                        str(fpath),
                        f"{where}.id",
                        f"rule id is already used in {owner[rule.id]}",
                        rule.id,
                    )
                )
                continue
            owner[rule.id] = fpath
            bad = False
            for sel_path, sel in _selectors(rule):
                wanted = ([sel.watchlist.list] if sel.watchlist else []) + (
                    _expr_lists(sel.expr) if sel.expr else []
                )
                for name in wanted:
                    if name not in lists:
                        bad = True
                        errors.append(
                            RuleError(
                                str(fpath),
                                f"{where}.{sel_path}",
                                f"unknown watch list {name!r}",
                                rule.id,
                            )
                        )
            if not bad:
                compiled.append(compile_rule(rule, fpath, lists, tz))
    for fpath, rf in files:
        for i, inh in enumerate(rf.inhibit):
            for side in ("source", "target"):
                for rid in getattr(inh, side).rules:
                    if rid not in owner:
                        errors.append(
                            ConfigError(
                                str(fpath), f"inhibit[{i}].{side}.rules", f"unknown rule id {rid!r}"
                            )
                        )
    if errors:
        raise ConfigErrors(errors)
    return RuleSet(
        rules=tuple(compiled),
        inhibit=tuple(i for _, rf in files for i in rf.inhibit),
        maintenance=tuple(m for _, rf in files for m in rf.maintenance),
        watchlists=lists,
        files=tuple(str(p) for p in paths),
    )
