"""Camera evidence for incidents: a snapshot from the device's camera (or the camera linked to
a door or gate) is taken when a rule signal opens an incident, and attached to it as JPEG
with its capture time. The capture runs off the event path (``SnapshotService.request``
returns at once); a camera that fails simply leaves no attachment."""

from __future__ import annotations

import logging
from pathlib import Path

from gateway.evidence import EvidenceStore, SnapshotService
from gateway.evidence.store import StoredSnapshot
from gateway.incidents.service import IncidentService

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

    def opened(self, incident_id: int, device_id: str, reason: str) -> None:
        self.snapshots.request(f"{REF_PREFIX}{incident_id}", device_id, reason=reason)

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
