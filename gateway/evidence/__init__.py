"""Evidence: JPEG snapshots from cameras, kept on disk and attached to incidents.

Public surface::

    CameraConfig        a camera's stream / snapshot URL and credentials
    Snapshot            one JPEG with its capture time
    SnapshotError       why a snapshot could not be taken
    EvidenceStore       data_dir/evidence with a size cap and retention
    StoredSnapshot      what the store knows about one saved JPEG
    SnapshotService     capture / request, never raising into the event path
    EvidenceSink        the incidents store's side: attach(ref, stored)
    EvidenceConfig      ``evidence:`` settings

Its HTTP routes (``/api/evidence``) are ``gateway.evidence.routes``.
"""

from gateway.evidence.cameras import CameraConfig
from gateway.evidence.service import EvidenceConfig, EvidenceSink, SnapshotService
from gateway.evidence.snapshot import Snapshot, SnapshotError
from gateway.evidence.store import EvidenceStore, StoredSnapshot

__all__ = [
    "CameraConfig",
    "EvidenceConfig",
    "EvidenceSink",
    "EvidenceStore",
    "Snapshot",
    "SnapshotError",
    "SnapshotService",
    "StoredSnapshot",
]
