"""The running gateway: database, adapters, MQTT consumer, batch writer and bus, wired once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from device_adapters.registry import load_adapters
from gateway import __version__
from gateway.audit.chain import open_audit_log
from gateway.bus import EventBus
from gateway.camera_services import CameraServices
from gateway.cluster import LeaseFence, SiteOwnership
from gateway.cluster.config import process_lock_file
from gateway.cluster.site_topics import SITELESS
from gateway.cluster_push import ClusterPush
from gateway.config.settings import GatewayConfig
from gateway.config.sites import DeviceConfig, load_sites
from gateway.events import Event, utcnow
from gateway.health import (
    BrokerHealth,
    ClusterHealth,
    HealthReport,
    IngestHealth,
    PipelineHealth,
    WriterHealth,
)
from gateway.incidents.evidence import IncidentEvidence
from gateway.incidents.runtime import IncidentsRuntime
from gateway.ingest.ack_gate import AckGate
from gateway.ingest.mqtt import MqttConsumer, SingleConsumerLock
from gateway.ingest.pipeline import Normaliser, QuarantineRecord
from gateway.ingest.reasons import Reason
from gateway.ingest.unregistered import UnregisteredPanics, UnregisteredReport
from gateway.privacy import install_log_redaction, load_pii_key, set_pii_key
from gateway.receivers.gat1400.service import Gat1400Service
from gateway.receivers.gb28181.server import Gb28181Server
from gateway.receivers.httppush.intake import PushIntake, release_replies
from gateway.receivers.isapi.service import IsapiService
from gateway.receivers.sia.receiver import SiaReceiver
from gateway.receivers.sia.server import SiaServer
from gateway.receivers.sink import ReceiverSink, settle_on_all
from gateway.reloading import ConfigReloader
from gateway.retention import RetentionJob
from gateway.storage.db import make_engine, migrate
from gateway.storage.files import secure_data_dir
from gateway.storage.registry import (
    CONSOLE,
    DeviceRemoval,
    console_devices,
    delete_console_device,
    save_device,
    seed_registry,
    stored_origin,
)
from gateway.storage.writer import BatchWriter, WriteItem
from rules import EngineSettings, RulesService, labels_from_registry
from rules.signal import Signal

if TYPE_CHECKING:
    from gateway.cluster.site_sessions import SiteSessions

log = logging.getLogger(__name__)

QUARANTINE_TICK_S = 10.0


class Gateway:
    """Owns every long-lived part. ``start``/``stop`` from the event loop that serves the API."""

    def __init__(self, config: GatewayConfig, *, protocol: Literal["v5", "v311"] = "v5") -> None:
        self.config = config
        secure_data_dir(config.data_dir)  # owner-only data files, checked at every start
        set_pii_key(load_pii_key(config.data_dir))
        install_log_redaction()  # no phone or ID-card number reaches a log
        self.registry = load_sites(config.sites_dir)
        # Devices of the site files (id → site), seeded again on every start: the console
        # cannot remove them (docs/web-console.md, "Devices").
        self.site_file_devices = {
            d.id: site.id for site in self.registry.sites.values() for d in site.devices
        }
        self.adapters = load_adapters(config.profiles_dir, config.timezone)
        self.engine = make_engine(config.sqlite_url_resolved())
        self.bus = EventBus()
        # Panics of devices missing from the registry become P1 incidents (bound at start).
        self.unregistered = UnregisteredPanics(
            self.registry,
            per_site_per_minute=config.ingest.unregistered_panics_per_minute,
            keep_record=self._keep_unregistered_record,
        )
        self.normaliser = Normaliser(
            self.adapters, self.registry, config.ingest, unregistered=self.unregistered
        )
        self._labels = labels_from_registry(self.registry)
        self.writer = BatchWriter(
            self.engine,
            batch_size=config.database.batch_size,
            interval_s=config.database.batch_interval_ms / 1000,
            quarantine_counts=self.normaliser.quarantine.drain,
            quarantine_max_bytes=config.ingest.quarantine_max_bytes,
        )
        # Cluster mode (docs/cluster.md): this worker's share of the sites, and the writer's
        # fence that stores a site's events only under the lease they were received under.
        self.cluster: SiteOwnership | None = None
        if config.cluster.enabled:
            self.cluster = SiteOwnership.from_config(
                self.engine,
                [*self.registry.sites, SITELESS],  # topics of no known site: one owner too
                config.cluster,
                writer_load=lambda: (self.writer.backlog, self.writer.lag_s() * 1000),
            )
            self.writer.fence = LeaseFence(self.cluster.worker_id, self.cluster.owned)
        self.consumer = MqttConsumer(
            config.mqtt, self.normaliser, self.writer, self.bus, protocol=protocol
        )
        self.consumer.unregistered = self.unregistered
        self.rules = RulesService(
            config.rules_dir,
            state_dir=config.data_dir / "rules",
            device_labels=self.device_labels,
            settings=EngineSettings(
                timezone=config.timezone, late_tolerance_s=config.rules.late_tolerance_s
            ),
        )
        self.cameras = CameraServices(
            config.cameras_file,
            config.onvif_file,
            config.data_dir,
            bus=self.bus,
            registry=self.registry,
            store=self.store_events,
            ingest=self.ingest_events,
            quarantine=self.store_quarantined,
        )
        self.incidents = IncidentsRuntime(
            self.engine,
            self.bus,
            self.registry,
            config_dir=config.routing_file.parent,
            data_dir=config.data_dir,
            mqtt=config.mqtt,
            timezone=config.timezone,
            rule_dir=config.rules_dir,
            routing_path=config.routing_file,
            grid_dir=config.grid_dir,
            audit=open_audit_log(self.engine, config.data_dir, config.audit),
            sms=config.sms,
        )
        self.rules.sink = self.incidents.sink
        # A panic's MQTT acknowledgement waits for its incident (gateway.ingest.ack_gate);
        # so does the HTTP answer to a device that pushed one (a gate of its own).
        self.ack_gate = AckGate(self.consumer.send_acks)
        self.consumer.gate = self.ack_gate
        # Push-protocol receivers (gateway/receivers): their answers wait the same way, their
        # quarantine is sampled and counted like MQTT's, and an unknown device's panic is
        # raised as an incident (report_unregistered_panic).
        self.receiver_sink = ReceiverSink(
            self.bus,
            self.writer,
            quarantine_raw_bytes=config.ingest.quarantine_raw_bytes,
            quarantine=self.store_quarantined,
            report_panic=self.report_unregistered_panic,
        )
        self.sia = (
            SiaServer(SiaReceiver(config.sia, self.registry, self.receiver_sink))
            if config.sia.enabled
            else None
        )
        self.gb28181 = (
            Gb28181Server(
                config.gb28181, self.registry, self.receiver_sink, timezone=config.timezone
            )
            if config.gb28181.enabled
            else None
        )
        self.push_gate = AckGate(release_replies)
        self.rules.on_evaluated, self._settle_stored = settle_on_all(
            (self.ack_gate, self.receiver_sink.gate, self.push_gate)
        )
        self.incidents.service.on_stored = self._signal_stored
        # HTTP push receivers on the API's port (docs/receivers-gat1400.md, -isapi.md).
        self.gat1400: Gat1400Service | None = None
        self.isapi: IsapiService | None = None
        if config.gat1400.enabled:
            g = config.gat1400
            intake = self._push_intake("gat1400", g.max_image_kb, g.max_images_per_record)
            self.gat1400 = Gat1400Service(g, self.registry, intake, timezone=config.timezone)
        if config.isapi.enabled:
            i = config.isapi
            intake = self._push_intake("isapi", i.max_image_kb, i.max_images_per_record)
            self.isapi = IsapiService(i, self.registry, intake)
        self.evidence = IncidentEvidence(
            self.incidents.service,
            self.cameras.snapshots,
            self.cameras.store,
            config.data_dir,
        )
        self.retention = RetentionJob(
            self.engine,
            days=config.retention.days,
            interval_s=config.retention.interval_minutes * 60,
        )
        self.reloader = ConfigReloader(self)
        # Cluster mode: one MQTT session per owned site instead of ``consumer``
        # (gateway.cluster.wiring.use_site_sessions, below).
        self.sessions: SiteSessions | None = None
        self._lock = SingleConsumerLock(
            process_lock_file(config.data_dir, config.mqtt.client_id, config.cluster)
        )
        self._housekeeping: asyncio.Task[None] | None = None
        # Several workers on one PostgreSQL: live console pushes reach every worker's viewers.
        self.cluster_push: ClusterPush | None = None
        if self.config.database.shares_live_pushes:
            self.cluster_push = ClusterPush(
                self.engine, self.bus, self.incidents.hub, self.incidents.dispatcher.worker
            )
        if self.cluster is not None:
            from gateway.cluster.wiring import use_site_sessions

            use_site_sessions(self, self.cluster, protocol=protocol)

    def _push_intake(self, receiver: str, max_image_kb: int, max_images: int) -> PushIntake:
        return PushIntake(
            receiver,
            self.adapters,
            self.registry,
            self.config.ingest,
            publish=self.bus.publish_many,
            submit=self.writer.submit_many,
            evidence=self.cameras.store,
            gate=self.push_gate,
            max_image_bytes=max_image_kb * 1024,
            max_images_per_record=max_images,
            report_panic=self.report_unregistered_panic,
        )

    async def start(self) -> None:
        if self.sessions is None:  # a cluster's sessions are kept apart by the site leases
            self._lock.acquire()
        await asyncio.to_thread(migrate, self.engine)
        await asyncio.to_thread(seed_registry, self.engine, self.registry)
        await self._load_console_devices()
        await self.retention.start()
        self.bus.bind(asyncio.get_running_loop())
        await self.incidents.start()
        if self.cluster_push is not None:
            await self.cluster_push.start()
        self.unregistered.bind(asyncio.get_running_loop(), self.incidents.service.emit)
        await self.rules.start(self.bus)
        self.writer.start()
        self._housekeeping = asyncio.create_task(self._quarantine_ticks(), name="quarantine")
        await self.cameras.start()
        if self.sia is not None:
            await self.sia.start()
        if self.gb28181 is not None:
            await self.gb28181.start()
        if self.sessions is None:  # else each site's session starts when its lease is won
            self.consumer.start()
        if self.cluster is not None:
            await self.cluster.start()
        await self.reloader.start()
        log.info(
            "gateway started: %d sites, %d devices, %d adapters, broker %s:%s",
            len(self.registry.sites), len(self.registry), len(self.adapters),
            self.config.mqtt.host, self.config.mqtt.port,
        )  # fmt: skip

    # -- devices added or edited in the console (docs/web-console.md, "Devices") ----------
    async def _load_console_devices(self) -> None:
        """Console edits are the record: they replace the site files' entries on start."""
        for site_id, device in await asyncio.to_thread(console_devices, self.engine):
            if site_id not in self.registry.sites:
                log.warning("device %s: its site %s is no longer configured", device.id, site_id)
                continue
            self.registry.put(site_id, device)
            self.device_changed(device.id)

    def device_problems(self, site_id: str, device: DeviceConfig) -> list[tuple[str, str]]:
        """Why ``device`` cannot go into ``site_id`` (empty: it can)."""
        problems = self.registry.problems(site_id, device)
        if device.profile and device.profile not in {a.name for a in self.adapters}:
            problems.append(
                (
                    "profile",
                    f"unknown profile {device.profile!r} (a new profile file is used within "
                    "a few seconds of being saved, or at once: POST /api/config/reload)",
                )
            )
        return problems

    async def put_device(
        self, site_id: str, device: DeviceConfig
    ) -> tuple[str, DeviceConfig] | None:
        """Store a device added or edited in the console and use it at once: ingest, rules,
        cameras and the grid read the same registry. Returns the previous entry, if any."""
        await asyncio.to_thread(save_device, self.engine, site_id, device)
        before = self.registry.put(site_id, device)
        self.device_changed(device.id)
        log.info("device %s %s in %s", device.id, "edited" if before else "added", site_id)
        return before

    async def delete_device(self, device_id: str) -> DeviceRemoval:
        """Remove a device added in the console: out of the registry at once (ingest then
        treats its messages as an unknown device's, the rules drop its offline and duration
        timers), then its row. Its stored events are kept: they are evidence. A device of the
        site files, one not added in the console and a camera other devices link to are
        refused (the outcome says which)."""
        stored = await asyncio.to_thread(stored_origin, self.engine, device_id)
        if stored is None:
            return DeviceRemoval("missing")
        site_id, source = stored
        if device_id in self.site_file_devices:
            return DeviceRemoval("site_file", self.site_file_devices[device_id])
        if source != CONSOLE:
            return DeviceRemoval("not_console", site_id)
        linked = self.registry.linked_to(device_id)
        if linked:
            return DeviceRemoval("linked", site_id, linked=tuple(linked))
        removed = self.registry.remove(device_id)
        self.device_changed(device_id)
        try:
            # Its last-seen state still queued would otherwise write the row back.
            if not await asyncio.to_thread(self.writer.flush):
                log.warning("device %s: the writer did not flush in time", device_id)
            deleted = await asyncio.to_thread(delete_console_device, self.engine, device_id)
        except BaseException:
            if removed is not None:  # the row is still there: so is the device
                self.registry.put(*removed)
                self.device_changed(device_id)
            raise
        if not deleted:  # removed meanwhile by another request
            return DeviceRemoval("missing")
        self.rules.forget_device(device_id)
        log.info("device %s deleted from %s (its stored events are kept)", device_id, site_id)
        return DeviceRemoval("deleted", site_id, device=removed[1] if removed is not None else None)

    def device_changed(self, device_id: str) -> None:
        self.normaliser.forget_device(device_id)
        if self.sessions is not None:  # a device's own topics follow it to its site's session
            self.sessions.update_subscriptions()
        for receiver in (self.gat1400, self.isapi):
            if receiver is not None:
                receiver.intake.forget_device(device_id)
        self._labels = labels_from_registry(self.registry)  # its cache may hold the old entry

    def device_labels(self, device_id: str) -> Mapping[str, str] | None:
        """Device labels for the rules (from the registry, cached until a device changes)."""
        return self._labels(device_id)

    # -- quarantine and unregistered devices' panics ---------------------------------------
    def store_quarantined(self, record: QuarantineRecord) -> None:
        """Quarantine a message from a non-MQTT source (ONVIF, receivers), counted and sampled
        as MQTT's are (gateway.ingest.quarantine); thread-safe."""
        source = record.device_id or record.topic
        sampler = self.normaliser.quarantine
        if sampler.admit(record.reason.value, source, record.received_at, record.detail):
            self.writer.submit(WriteItem(quarantined=record))

    def _keep_unregistered_record(
        self, *, origin: str, device_id: str, raw: bytes, detail: str, received_at: datetime
    ) -> None:
        """The quarantine record of a receiver's unregistered panic: always kept."""
        record = QuarantineRecord(
            received_at, origin[:512], Reason.UNKNOWN_DEVICE, detail[:1000], device_id[:128],
            raw[: self.config.ingest.quarantine_raw_bytes], len(raw),
        )  # fmt: skip
        self.normaliser.quarantine.keep_always(
            Reason.UNKNOWN_DEVICE.value, device_id, received_at, detail
        )
        self.writer.submit(WriteItem(quarantined=record))

    async def report_unregistered_panic(
        self,
        *,
        device_id: str,
        protocol: str,
        raw: bytes,
        detail: str = "",
        site: str | None = None,
        origin: str = "",
        received_at: datetime | None = None,
        within_s: float | None = 10.0,
    ) -> UnregisteredReport:
        """A panic from a device missing from the registry, read by any receiver (SIA DC-09,
        GB/T 28181, …): quarantined as ``unknown_device`` and raised as a P1 incident marked
        未登记设备 for ``site`` (when it is one of this gateway's; else every site), routed to
        the police desk and the command centre. Returns once the incidents are stored (then
        acknowledge on the wire) or after ``within_s``. On the gateway's loop; from a thread,
        ``asyncio.run_coroutine_threadsafe``. See ``gateway.ingest.unregistered``."""
        return await self.unregistered.report(
            device_id=device_id,
            protocol=protocol,
            raw=raw,
            detail=detail,
            site=site,
            origin=origin,
            received_at=received_at,
            within_s=within_s,
        )

    def _signal_stored(self, signal: Signal) -> None:
        self._settle_stored(signal)  # a panic's acknowledgement: MQTT, receivers, HTTP push
        self.unregistered.stored(signal)  # a receiver waiting in report_unregistered_panic

    async def _quarantine_ticks(self) -> None:
        """Close the quarantine's minute (its summary log lines) and store its counts even
        when no message comes to carry them."""
        sampler = self.normaliser.quarantine
        while True:
            await asyncio.sleep(QUARANTINE_TICK_S)
            sampler.tick(utcnow())
            if sampler.has_pending:
                self.writer.submit(WriteItem())

    def store_events(self, events: list[Event]) -> None:
        """Store events that reached the bus another way (thread-safe)."""
        self.writer.submit(WriteItem(events=list(events)))

    def ingest_events(self, events: list[Event]) -> None:
        """Events from a non-MQTT source (ONVIF): to the bus, then stored (thread-safe)."""
        for event in events:
            self.bus.publish(event)
        self.store_events(events)

    async def wait_subscribed(self, within_s: float = 30.0) -> bool:
        if self.sessions is not None:
            return True  # each site's session subscribes when its lease is won
        return await asyncio.to_thread(self.consumer.wait_subscribed, within_s)

    async def stop(self) -> None:
        await self.reloader.stop()
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
        await self.retention.stop()
        await self.cameras.stop()
        if self.sia is not None:
            await self.sia.stop()
        if self.gb28181 is not None:
            await self.gb28181.stop()
        if self.sessions is not None:
            await self.sessions.stop()
        else:
            await asyncio.to_thread(self.consumer.stop)
        await asyncio.to_thread(self.writer.stop)
        if self.cluster is not None:  # after the last write: then the others take over at once
            await self.cluster.stop()
        await self.rules.stop()
        if self.cluster_push is not None:
            await self.cluster_push.stop()
        await self.incidents.stop()
        self.engine.dispose()
        self._lock.release()

    def health(self) -> HealthReport:
        """Cheap snapshot for /api/health; the route adds its own database check. A cluster
        worker whose last lease renewal failed is degraded."""
        cluster = ClusterHealth.from_status(self.cluster.status()) if self.cluster else None
        return HealthReport(
            status="degraded" if cluster is not None and not cluster.renewal_ok else "ok",
            version=__version__,
            broker=BrokerHealth.from_status(
                self.consumer.status if self.sessions is None else self.sessions.broker_status()
            ),
            ingest=IngestHealth.from_stats(self.normaliser.stats),
            writer=WriterHealth.from_writer(self.writer),
            lag_ms=round(self.writer.lag_s() * 1000, 1),
            pipeline=PipelineHealth(
                rules_backlog=self.rules.backlog,
                signals_pending=self.incidents.service.signals.pending,
                panic_acks_held=len(self.ack_gate)
                + (0 if self.sessions is None else len(self.sessions.gates)),
                panics_not_stored=self.incidents.service.unstored.waiting,
            ),
            cluster=cluster,
        )
