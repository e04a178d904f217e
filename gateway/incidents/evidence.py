"""Camera evidence for incidents: a snapshot from the device's camera (or the camera linked to
a door or gate) is taken when a rule signal opens an incident, and attached to it as JPEG
with its capture time. The capture runs off the event path (``SnapshotService.request``
returns at once); a camera that fails simply leaves no attachment. Pictures a device pushed
with the events that opened the incident (GA/T 1400, ISAPI: stored under the event's id) are
attached as well."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from sqlalchemy import select

from gateway.evidence import EvidenceStore, SnapshotService
from gateway.evidence.store import StoredSnapshot
from gateway.incidents.service import IncidentService
from gateway.incidents.tables import incidents as incidents_table

log = logging.getLogger(__name__)

REF_PREFIX = "incident-"  # shared with the console (gateway/web): its captures attach too


class IncidentEvidence:
    """The ``EvidenceSink`` of the snapshot service, and the incidents' ``on_opened`` hook."""

    def __init__(
        self,
        incidents: IncidentService,
        snapshots: SnapshotService,
        store: EvidenceStore,
        data_dir: Path,
    ) -> None:
        self.incidents = incidents
        self.snapshots = snapshots
        self.store = store
        self.data_dir = data_dir  # attachments live under data_dir/attachments
        snapshots.sink = self
        incidents.on_opened = self.opened
        self._tasks: set[asyncio.Task[None]] = set()

    def opened(self, incident_id: int, device_id: str, reason: str) -> None:
        self.snapshots.request(f"{REF_PREFIX}{incident_id}", device_id, reason=reason)
        task = asyncio.get_running_loop().create_task(self._attach_pushed(incident_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _attach_pushed(self, incident_id: int) -> None:
        """The pictures pushed with the incident's events, attached like camera snapshots."""
        try:
            event_ids = await self.incidents.run_db(self._event_ids, incident_id)
            for event_id in event_ids:
                for snapshot in self.store.for_ref(event_id):
                    if snapshot.method == "push":
                        await self.attach(f"{REF_PREFIX}{incident_id}", snapshot)
        except Exception:  # evidence is best effort: the incident itself is stored
            log.exception("evidence: pushed pictures of incident %s not attached", incident_id)

    def _event_ids(self, incident_id: int) -> list[str]:
        c = incidents_table.c
        with self.incidents.engine.connect() as conn:
            found = conn.execute(select(c.event_ids).where(c.id == incident_id)).scalar()
        return [str(e) for e in found or []]

    async def attach(self, ref: str, snapshot: StoredSnapshot) -> None:
        if not ref.startswith(REF_PREFIX) or not ref[len(REF_PREFIX) :].isdigit():
            return
        data = self.store.read(snapshot.id)
        if data is None:
            return
        await self.incidents.attach(
            int(ref[len(REF_PREFIX) :]),
            data,
            filename=f"{snapshot.camera_id}-{snapshot.captured_at:%Y%m%dT%H%M%SZ}.jpg",
            actor=snapshot.camera_id,
            role="camera",
            note=f"摄像机抓拍 camera snapshot {snapshot.captured_at.isoformat()} ({snapshot.method})",
            data_dir=self.data_dir,
        )
