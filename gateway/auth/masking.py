"""Personal data shown by role: plates and raw payloads are masked for roles without
``pii:read`` (card and ID numbers are never stored raw; phone numbers are listed masked and
revealed one record at a time, audited, to ``pii:read`` roles: ``gateway.grid.routes``)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from gateway.auth.principal import Permission, Principal
from gateway.privacy import mask_plate

E = TypeVar("E", bound=BaseModel)
MASKED_KEYS = ("plate",)


def mask_event(event: E, principal: Principal) -> E:
    """An event as shown to ``principal`` (any model with ``attributes``, and ``raw`` for
    the detail): plates masked and the raw payload hidden without ``pii:read``."""
    if principal.allows(Permission.PII_READ):
        return event
    attributes: dict[str, Any] = dict(getattr(event, "attributes", {}))
    for key in MASKED_KEYS:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            attributes[key] = mask_plate(value)
    update: dict[str, object] = {"attributes": attributes}
    if getattr(event, "raw", ""):
        update["raw"] = "（已隐藏 / hidden: needs pii:read）"
    return event.model_copy(update=update)
