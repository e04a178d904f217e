"""The configured sites and devices, mirrored into the database."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite

from gateway.config.sites import SiteRegistry
from gateway.storage import tables


def seed_registry(engine: Engine, registry: SiteRegistry) -> None:
    """Upsert configured sites and devices; runtime state (online, last seen) is kept."""
    insert = sqlite.insert if engine.dialect.name == "sqlite" else postgresql.insert
    with engine.begin() as conn:
        for site in registry.sites.values():
            stmt = insert(tables.sites).values(id=site.id, name=site.name, address=site.address)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["id"], set_={"name": site.name, "address": site.address}
                )
            )
            rows = [
                {
                    "id": d.id,
                    "site": site.id,
                    "kind": d.kind.value,
                    "name": d.name,
                    "place": d.place,
                    "zone": d.zone,
                    "household": d.household,
                    "camera": d.camera,
                    "heartbeat_s": d.heartbeat_s,
                    "registered": True,
                }
                for d in site.devices
            ]
            if rows:
                ins = insert(tables.devices)
                keep = (
                    "site",
                    "kind",
                    "name",
                    "place",
                    "zone",
                    "household",
                    "camera",
                    "heartbeat_s",
                    "registered",
                )
                conn.execute(
                    ins.on_conflict_do_update(
                        index_elements=["id"], set_={k: ins.excluded[k] for k in keep}
                    ),
                    rows,
                )
