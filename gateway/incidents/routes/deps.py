"""What every incidents route takes: the running incidents runtime (``app.state.incidents``,
set where the app is assembled: ``gateway.server``), as a typed dependency, and the
permissions the routes check."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Protocol

from fastapi import Depends
from sqlalchemy import Engine

from gateway.api.deps import app_part, require
from gateway.auth.principal import Permission
from gateway.grid.directory import GridDirectory
from gateway.incidents.service import IncidentService
from gateway.notify.console import NotificationHub


class IncidentsContext(Protocol):
    @property
    def engine(self) -> Engine: ...

    @property
    def service(self) -> IncidentService: ...

    @property
    def hub(self) -> NotificationHub: ...

    @property
    def data_dir(self) -> Path: ...

    @property
    def timezone(self) -> str: ...

    @property
    def grid(self) -> GridDirectory: ...


IncidentsDep = Annotated[IncidentsContext, Depends(app_part("incidents"))]
READ = [Depends(require(Permission.INCIDENTS_READ))]
WRITE = [Depends(require(Permission.INCIDENTS_WRITE))]
REPORT = [Depends(require(Permission.INCIDENTS_REPORT))]
