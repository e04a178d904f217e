"""``/api/rules``: list rules with their state and last firing, enable/disable, reload.

The running ``RulesService`` is taken from ``app.state.rules``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from gateway.api.deps import Permission, require
from gateway.config import ConfigError
from rules.engine import RuleState
from rules.service import RulesService

router = APIRouter(prefix="/api/rules", tags=["rules"])
_read = [Depends(require(Permission.RULES_READ))]
_write = [Depends(require(Permission.RULES_WRITE))]


class RuleOut(BaseModel):
    id: str
    description: str
    description_zh: str = Field(..., description="In Chinese (the English when none is given)")
    severity: str
    category: str
    condition: str
    file: str
    enabled: bool
    groups: int
    active_signals: int
    fired: int
    updates: int
    inhibited: int
    out_of_schedule: int
    expr_errors: int
    last_fired_at: datetime | None
    last_signal_id: str | None

    @classmethod
    def of(cls, r: RuleState) -> RuleOut:
        s = r.stats
        return cls(
            id=r.id,
            description=r.description,
            description_zh=r.description_zh,
            severity=r.severity,
            category=r.category,
            condition=r.condition,
            file=r.file,
            enabled=r.enabled,
            groups=r.groups,
            active_signals=r.active_signals,
            fired=s.fired,
            updates=s.updates,
            inhibited=s.inhibited,
            out_of_schedule=s.out_of_schedule,
            expr_errors=s.expr_errors,
            last_fired_at=r.last_fired_at,
            last_signal_id=s.last_signal_id,
        )


class ErrorOut(BaseModel):
    file: str
    rule_id: str
    key_path: str
    message: str

    @classmethod
    def of(cls, e: ConfigError) -> ErrorOut:
        return cls(
            file=e.file, rule_id=getattr(e, "rule_id", ""), key_path=e.key_path, message=e.message
        )


class RulesOut(BaseModel):
    rules: list[RuleOut]
    counters: dict[str, int]
    late_tolerance_s: float = Field(
        ..., description="Events later than this are used by panic and absence rules only"
    )
    last_reload_errors: list[ErrorOut]


class ReloadOut(BaseModel):
    ok: bool
    rules: int
    errors: list[ErrorOut]


def get_rules_service(request: Request) -> RulesService:
    service = getattr(request.app.state, "rules", None)
    if not isinstance(service, RulesService):
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "rules engine is not running")
    return service


RulesDep = Annotated[RulesService, Depends(get_rules_service)]


@router.get("", dependencies=_read)
def list_rules(service: RulesDep) -> RulesOut:
    counters = vars(service.engine.counters)
    return RulesOut(
        rules=[RuleOut.of(r) for r in service.rules()],
        counters={k: int(v) for k, v in counters.items()},
        late_tolerance_s=service.engine.settings.late_tolerance_s,
        last_reload_errors=[ErrorOut.of(e) for e in service.last_reload_errors],
    )


@router.get("/{rule_id}", dependencies=_read)
def get_rule(rule_id: str, service: RulesDep) -> RuleOut:
    found = service.rule(rule_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no rule {rule_id!r}")
    return RuleOut.of(found)


def _switch(service: RulesService, rule_id: str, enabled: bool) -> RuleOut:
    found = service.set_enabled(rule_id, enabled)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no rule {rule_id!r}")
    return RuleOut.of(found)


@router.post("/{rule_id}/enable", dependencies=_write)
def enable_rule(rule_id: str, service: RulesDep) -> RuleOut:
    return _switch(service, rule_id, True)


@router.post("/{rule_id}/disable", dependencies=_write)
def disable_rule(rule_id: str, service: RulesDep) -> RuleOut:
    return _switch(service, rule_id, False)


@router.post(
    "/reload",
    response_model=ReloadOut,
    responses={422: {"model": ReloadOut}},
    dependencies=_write,
)
def reload_rules(service: RulesDep) -> ReloadOut | JSONResponse:
    """Validate the rule files and swap them in; on errors (422) the running rules stay."""
    errors = service.reload()
    out = ReloadOut(
        ok=not errors,
        rules=len(service.engine.ruleset.rules),
        errors=[ErrorOut.of(e) for e in errors],
    )
    if errors:
        return JSONResponse(out.model_dump(mode="json"), status_code=422)
    return out
