"""Camera evidence reaches incidents: a new incident asks for a snapshot under its ref, and a
stored snapshot for that ref is attached to it as JPEG with its capture time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.evidence.store import StoredSnapshot
from gateway.incidents.evidence import IncidentEvidence

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64 + b"\xff\xd9"


class Snapshots:
    def __init__(self) -> None:
        self.sink: Any = None
        self.requests: list[tuple[str, str, str]] = []

    def request(self, ref: str, device_id: str, reason: str = "") -> None:
        self.requests.append((ref, device_id, reason))


class Store:
    def read(self, snapshot_id: str) -> bytes | None:
        return JPEG if snapshot_id == "s1" else None


class Incidents:
    def __init__(self) -> None:
        self.on_opened: Any = None
        self.attached: list[tuple[int, bytes, dict[str, Any]]] = []

    async def attach(self, incident_id: int, data: bytes, **kwargs: Any) -> dict[str, Any]:
        self.attached.append((incident_id, data, kwargs))
        return {}


def snapshot(snapshot_id: str = "s1") -> StoredSnapshot:
    return StoredSnapshot(
        snapshot_id, "cam-north", datetime(2026, 11, 22, 3, 0, tzinfo=UTC), len(JPEG), "http"
    )


async def test_an_opened_incident_gets_its_camera_snapshot_attached(tmp_path: Path) -> None:
    incidents, snapshots = Incidents(), Snapshots()
    link = IncidentEvidence(incidents, snapshots, Store(), tmp_path)  # type: ignore[arg-type]
    assert snapshots.sink is link and incidents.on_opened == link.opened

    incidents.on_opened(7, "door-b1u1", "door_forced_open")
    assert snapshots.requests == [("incident-7", "door-b1u1", "door_forced_open")]

    await link.attach("incident-7", snapshot())
    ((incident_id, data, kwargs),) = incidents.attached
    assert (incident_id, data) == (7, JPEG)
    assert kwargs["role"] == "camera" and "2026-11-22T03:00:00+00:00" in kwargs["note"]
    assert kwargs["filename"].endswith(".jpg") and kwargs["data_dir"] == tmp_path


async def test_snapshots_for_other_refs_or_gone_from_the_store_are_not_attached(
    tmp_path: Path,
) -> None:
    incidents = Incidents()
    link = IncidentEvidence(incidents, Snapshots(), Store(), tmp_path)  # type: ignore[arg-type]
    await link.attach("event-lianfang:cam-north:42", snapshot())
    await link.attach("incident-x", snapshot())
    await link.attach("incident-8", snapshot("evicted"))
    assert incidents.attached == []
