"""The configured sites and devices, mirrored into the database, and the devices added or
edited in the console, which the database holds (docs/web-console.md, "Devices")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from gateway.config.sites import DeviceConfig, SiteRegistry
from gateway.storage import tables
from gateway.storage.startup import serialize_startup

CONSOLE = "console"  # devices.source of a device added or edited in the console
_FIELDS = ("kind", "name", "profile", "place", "zone", "household", "camera", "heartbeat_s")
# The push protocols' settings of an entry, kept together in the ``protocols`` JSON column.
PROTOCOL_FIELDS = ("sia", "gb28181", "password_env")


@dataclass(frozen=True, slots=True)
class DeviceRemoval:
    """What became of a request to remove a device (``gateway.runtime.Gateway``)."""

    outcome: Literal["deleted", "missing", "site_file", "not_console", "linked"]
    site: str | None = None
    device: DeviceConfig | None = None  # the entry removed
    linked: tuple[str, ...] = ()  # devices whose linked camera it is


def _insert(engine: Engine) -> Any:
    return sqlite.insert if engine.dialect.name == "sqlite" else postgresql.insert


def protocols_of(device: DeviceConfig) -> dict[str, Any]:
    """``sia``, ``gb28181`` and ``password_env`` of an entry, those that are set."""
    return device.model_dump(include=set(PROTOCOL_FIELDS), exclude_none=True, mode="json")


def _row(site_id: str, device: DeviceConfig) -> dict[str, Any]:
    return {
        "id": device.id,
        "site": site_id,
        "kind": device.kind.value,
        "name": device.name,
        "profile": device.profile,
        "place": device.place,
        "zone": device.zone,
        "household": device.household,
        "camera": device.camera,
        "heartbeat_s": device.heartbeat_s,
        "protocols": protocols_of(device),
        "registered": True,
    }


def seed_registry(engine: Engine, registry: SiteRegistry) -> None:
    """Upsert configured sites and devices; runtime state (online, last seen) is kept, and
    so is every device edited in the console (the site files are its seed, not its record)."""
    insert = _insert(engine)
    with engine.begin() as conn:
        serialize_startup(conn)  # workers starting together seed one after the other
        for site in registry.sites.values():
            stmt = insert(tables.sites).values(id=site.id, name=site.name, address=site.address)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["id"], set_={"name": site.name, "address": site.address}
                )
            )
        # In id order, as the batch writer updates them: one lock order, no deadlock.
        rows = sorted(
            (_row(site.id, d) for site in registry.sites.values() for d in site.devices),
            key=lambda r: str(r["id"]),
        )
        if rows:
            ins = insert(tables.devices)
            keep = ("site", *_FIELDS, "protocols", "registered")
            conn.execute(
                ins.on_conflict_do_update(
                    index_elements=["id"],
                    set_={k: ins.excluded[k] for k in keep},
                    where=tables.devices.c.source.is_(None),
                ),
                rows,
            )
        _repair_console_protocols(conn, [r for r in rows if r["protocols"]])


def _repair_console_protocols(conn: Any, rows: list[dict[str, Any]]) -> None:
    """Console rows stored before the ``protocols`` column (NULL) take their site-file
    entry's push-protocol settings, which an edit used to drop (a push device could then no
    longer authenticate). A console row that says ``{}`` chose to have none: left alone."""
    c = tables.devices.c
    for r in rows:
        conn.execute(
            update(tables.devices)
            .where(c.id == r["id"], c.source == CONSOLE, c.protocols.is_(None))
            .values(protocols=r["protocols"])
        )


def console_devices(engine: Engine) -> list[tuple[str, DeviceConfig]]:
    """The devices added or edited in the console, as ``(site id, device)``."""
    c = tables.devices.c
    stmt = select(c.id, c.site, c.protocols, *(c[f] for f in _FIELDS)).where(c.source == CONSOLE)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(stmt.order_by(c.id))]
    out = []
    for r in rows:
        fields = {k: r[k] for k in _FIELDS if r[k] is not None}
        protocols = r["protocols"] or {}
        fields.update({k: protocols[k] for k in PROTOCOL_FIELDS if protocols.get(k) is not None})
        out.append((str(r["site"]), DeviceConfig.model_validate({"id": r["id"], **fields})))
    return out


def save_device(engine: Engine, site_id: str, device: DeviceConfig) -> None:
    """Store a device added or edited in the console (its runtime state is kept)."""
    row = {**_row(site_id, device), "source": CONSOLE}
    ins = _insert(engine)(tables.devices)
    stmt = ins.on_conflict_do_update(
        index_elements=["id"],
        set_={k: ins.excluded[k] for k in ("site", *_FIELDS, "protocols", "registered", "source")},
    )
    with engine.begin() as conn:
        conn.execute(stmt, [row])


def delete_console_device(engine: Engine, device_id: str) -> bool:
    """Remove the row of a device added in the console (only such a row: a device of the
    site files would be seeded again on the next start). Its stored events stay: they are
    the record of what happened. True when a row was removed."""
    c = tables.devices.c
    stmt = delete(tables.devices).where(c.id == device_id, c.source == CONSOLE)
    with engine.begin() as conn:
        return conn.execute(stmt).rowcount == 1


def stored_origin(engine: Engine, device_id: str) -> tuple[str, str | None] | None:
    """``(site, source)`` of a stored device, or None when there is no such row."""
    c = tables.devices.c
    with engine.connect() as conn:
        row = conn.execute(select(c.site, c.source).where(c.id == device_id)).first()
    return None if row is None else (str(row.site), row.source)
