"""Grid tables, on the shared ``gateway.storage.tables.metadata`` (migration 0002).

Phone numbers are personal data: never stored in clear. A keyed hash (``phone_ref``, for
look-ups), a masked form (``phone_masked``, for display) and the number encrypted with
AES-GCM (``phone_enc``, migration 0005; revealed only to ``pii:read`` roles), see
``gateway.privacy``.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Index, String, Table

from gateway.storage.tables import UtcDateTime, metadata

grid_areas = Table(
    "grid_areas",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("level", String(16), nullable=False),  # street | community | cell
    Column("name", String(100), nullable=False),
    Column("parent_id", String(64)),  # community → street, cell → community
    Column("parent_cell", String(64)),  # micro-grid → its cell
)

grid_cell_places = Table(
    "grid_cell_places",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("place", String(64), primary_key=True),  # "" = the whole site
    Column("cell_id", String(64), nullable=False, index=True),
)

grid_beats = Table(
    "grid_beats",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("station", String(100), nullable=False, default=""),
    Column("cells", JSON, nullable=False),
)

grid_neighbour_groups = Table(
    "grid_neighbour_groups",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("cell_id", String(64), nullable=False, index=True),
)

grid_households = Table(
    "grid_households",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("site", String(64), nullable=False),
    Column("place", String(64)),
    Column("address", String(200), nullable=False, default=""),
    Column("group_id", String(64), index=True),
    # [{name, phone_ref, phone_masked, phone_enc, relation}]
    Column("contacts", JSON, nullable=False),
    Column("updated_at", UtcDateTime),
)

grid_people = Table(
    "grid_people",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(50), nullable=False),
    Column("phone_ref", String(64)),
    Column("phone_masked", String(32)),
    Column("phone_enc", String(128)),  # gateway.privacy.encrypt_phone, bound to person/<id>
    Column("roles", JSON, nullable=False),
    Column("scopes", JSON, nullable=False),  # {"cells": [...], "beats": [...], ...}
    Column("active", Boolean, nullable=False, default=True),
    Column("updated_at", UtcDateTime),
)

grid_assignments = Table(
    "grid_assignments",
    metadata,
    Column("person_id", String(64), primary_key=True),
    Column("role", String(32), primary_key=True),
    Column("scope_kind", String(16), primary_key=True),  # street|community|cell|beat|site|any
    Column("scope_id", String(64), primary_key=True),
    Index("ix_grid_assignments_scope", "scope_kind", "scope_id", "role"),
)

GRID_TABLES = (
    grid_assignments,
    grid_people,
    grid_households,
    grid_neighbour_groups,
    grid_beats,
    grid_cell_places,
    grid_areas,
)
