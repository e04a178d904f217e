"""``IncidentsRuntime``: the grid, incidents, routing and notification, wired once.

Usage (see docs/incidents.md for the exact wiring)::

    incidents = IncidentsRuntime(gateway.engine, gateway.bus, gateway.registry,
                                 config_dir=..., data_dir=..., mqtt=config.mqtt)
    gateway.rules.sink = incidents.sink          # before gateway.start()
    await gateway.start()
    await incidents.start()                      # after: the schema is migrated
    app = create_app(gateway, extra_routers=[*incidents_routes.routers, grid_routes.router])
    app.state.incidents = incidents              # what those routes read
    ...
    await incidents.stop()                       # before gateway.stop()
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path

from sqlalchemy import Engine

from gateway.audit.chain import AuditLog, load_audit_key
from gateway.bus import EventBus
from gateway.config.errors import ConfigErrors
from gateway.config.settings import MqttConfig, SmsConfig
from gateway.config.sites import SiteRegistry
from gateway.events import utcnow
from gateway.grid.directory import GridDirectory
from gateway.grid.model import load_grid
from gateway.grid.store import grid_is_empty, import_grid, read_directory
from gateway.incidents.acks import MqttAcks
from gateway.incidents.service import IncidentService
from gateway.notify.base import Notifier
from gateway.notify.console import ConsoleNotifier, NotificationHub
from gateway.notify.dispatcher import Dispatcher
from gateway.notify.mqtt import MqttNotifier
from gateway.notify.policy import RetryPolicy
from gateway.notify.sms import LogSmsDriver, SmsDriver, SmsNotifier
from gateway.notify.sms_http import HttpSmsDriver
from gateway.notify.webhook import WebhookNotifier
from gateway.routing.model import RoutingConfig, load_routing
from rules.signal import Signal

log = logging.getLogger(__name__)


def default_worker_id() -> str:
    """``host:pid:random``: unique among the workers sharing a database."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


def rule_label_keys(rule_dir: Path | None) -> set[str]:
    """Label keys the rule files use (so routes may match them, and only them)."""
    if rule_dir is None or not rule_dir.exists():
        return set()
    from rules.loader import load_rules

    keys: set[str] = set()
    for compiled in load_rules(rule_dir).rules:
        rule = getattr(compiled, "rule", compiled)
        keys.update(getattr(rule, "labels", {}) or {})
    return keys


class IncidentsRuntime:
    """Owns the incident service, the dispatcher and the notifiers.

    Args:
        engine: the gateway's engine (schema migrated by ``Gateway.start``).
        bus: the gateway's event bus (unused today; kept for live incident streams).
        registry: sites and devices, to place devices on the grid.
        config_dir: folder holding ``routing.yaml`` and ``grid/``.
        data_dir: attachments live under ``<data_dir>/attachments``.
        mqtt: broker settings for the MQTT notifier (None: no MQTT channel). Its connection
            also receives acknowledgements on ``lianfang/ack/<kind>/<id>`` (``acks``).
        clock: the gateway clock (injected in tests).
        timezone: for "today" and "this month" in statistics.
        rule_dir: rule files, whose label keys routes may match.
        notifiers: replace the default notifiers (tests).
        routing_path, grid_dir: override ``config_dir / "routing.yaml"`` and ``config_dir / "grid"``.
        audit: where acknowledgements over MQTT are audited (HTTP ones are audited by the
            API's middleware); None: not audited. Also where the HTTP SMS driver records each
            number it decrypts (None: an audit log on ``data_dir``'s key).
        sms: the ``sms`` section of ``lianfang.yaml`` (None: the log driver).
        worker: this worker's name on claimed outbox rows (default: host, process, random).
    """

    def __init__(
        self,
        engine: Engine,
        bus: EventBus,
        registry: SiteRegistry,
        config_dir: Path,
        data_dir: Path,
        mqtt: MqttConfig | None,
        clock: Callable[[], datetime] = utcnow,
        *,
        timezone: str = "Asia/Shanghai",
        rule_dir: Path | None = None,
        notifiers: dict[str, Notifier] | None = None,
        tick_s: float = 0.25,
        routing_path: Path | None = None,
        grid_dir: Path | None = None,
        audit: AuditLog | None = None,
        sms: SmsConfig | None = None,
        worker: str | None = None,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.registry = registry
        self.config_dir = config_dir
        self.data_dir = data_dir
        self.timezone = timezone
        self.clock = clock
        self.routing_path = routing_path or config_dir / "routing.yaml"
        self.grid_dir = grid_dir or config_dir / "grid"
        self._label_keys = rule_label_keys(rule_dir)
        self.routing: RoutingConfig = load_routing(self.routing_path, label_keys=self._label_keys)
        self.hub = NotificationHub()
        self.grid = GridDirectory(registry=registry)
        self.service = IncidentService(engine, self.routing, self.grid, clock=clock, hub=self.hub)
        self.sms: SmsDriver = LogSmsDriver()
        self._sms_policy: RetryPolicy | None = None
        if sms is not None and sms.http is not None:
            driver = HttpSmsDriver(
                sms.http, engine, audit or AuditLog(engine, load_audit_key(data_dir))
            )
            self.sms, self._sms_policy = driver, driver.policy
        self.acks = MqttAcks(self.service, audit=audit)
        self._notifiers = notifiers
        self._mqtt = mqtt
        self.dispatcher = Dispatcher(
            engine,
            {},
            clock=clock,
            run_db=self.service.run_db,
            hub=self.hub,
            on_deadline=self.service.escalate,
            tick_s=tick_s,
            # PostgreSQL: other workers may share the outbox, so rows are claimed before
            # they are sent and the database is the timer (docs/cluster.md).
            shared=engine.dialect.name == "postgresql",
            worker=worker or default_worker_id(),
        )
        self.service.dispatcher = self.dispatcher

    @property
    def sink(self) -> IncidentService:
        """The ``rules.SignalSink`` for ``RulesService``."""
        return self.service

    async def emit(self, signal: Signal) -> None:
        """Emit and wait until the signal is stored (tools and tests; the rules engine uses
        ``sink``, which does not wait)."""
        await self.service.emit(signal)
        await self.service.settled()

    def _default_notifiers(self) -> tuple[dict[str, Notifier], dict[str, RetryPolicy]]:
        notifiers: dict[str, Notifier] = {
            "console": ConsoleNotifier(self.hub),
            "sms": SmsNotifier(self.sms, "sms"),
            "voice": SmsNotifier(self.sms, "voice"),
        }
        policies: dict[str, RetryPolicy] = {}
        if self._sms_policy is not None:
            policies["sms"] = policies["voice"] = self._sms_policy
        if self._mqtt is not None:
            notifiers["mqtt"] = MqttNotifier(self._mqtt, on_ack=self.acks)
        for hook in self.routing.webhooks:
            webhook = WebhookNotifier(hook)
            notifiers[f"webhook:{hook.name}"] = webhook
            policies[f"webhook:{hook.name}"] = webhook.policy
        return notifiers, policies

    async def reload_grid(self) -> None:
        self.grid = await self.service.run_db(read_directory, self.engine, self.registry)
        self.service.grid = self.grid

    async def start(self) -> None:
        """Load the grid (importing ``config/grid`` on first run), check the routing tree
        against it, restore the outbox and start sending."""
        if await self.service.run_db(grid_is_empty, self.engine) and self.grid_dir.is_dir():
            grid = load_grid(self.grid_dir, self.registry)
            # another worker starting now may import it first: then this one imports nothing
            counts = await self.service.run_db(
                partial(import_grid, only_if_empty=True), self.engine, grid
            )
            if counts is not None:
                log.info("grid imported from %s: %s", self.grid_dir, counts)
        await self.reload_grid()
        self.routing = load_routing(
            self.routing_path,
            label_keys=self._label_keys,
            cells={a.id for a in self.grid.cells()} or None,
            communities={a.id for a in self.grid.areas.values() if a.level == "community"} or None,
        )
        self.service.routing = self.routing
        if self._notifiers is not None:
            self.dispatcher.notifiers = self._notifiers
        else:
            self.dispatcher.notifiers, self.dispatcher.policies = self._default_notifiers()
        await self.dispatcher.start()

    async def stop(self) -> None:
        await self.service.signals.close()  # queued signals first: they may queue notifications
        await self.dispatcher.stop()
        self.service.close()


__all__ = ["ConfigErrors", "IncidentsRuntime"]
