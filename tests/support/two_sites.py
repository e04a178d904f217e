"""Two compounds of one gateway, each in its own grid cell and police beat: for tests of
what reaches which police desk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gateway.config.sites import DeviceConfig, SiteConfig, SiteRegistry
from gateway.events import DeviceKind
from tests.support.compound import ROOT

SITE, OTHER = "north-compound", "south-compound"


def registry() -> SiteRegistry:
    return SiteRegistry(
        [
            SiteConfig(
                id=SITE,
                devices=[
                    DeviceConfig(id="panic-1", kind=DeviceKind.ALARM, household="1-101"),
                    DeviceConfig(id="sos-known", kind=DeviceKind.ALARM),
                ],
            ),
            SiteConfig(id=OTHER, devices=[DeviceConfig(id="door-9", kind=DeviceKind.ACCESS)]),
        ]
    )


def write_config(tmp: Path, port: int, ingest: dict[str, Any] | None = None) -> Path:
    (tmp / "sites").mkdir()
    for site in registry().sites.values():
        (tmp / "sites" / f"{site.id}.yaml").write_text(
            yaml.safe_dump(site.model_dump(mode="json", exclude_defaults=True))
        )
    (tmp / "grid").mkdir()
    grid = {
        "street_offices": [{"id": "st", "name": "测试街道"}],
        "communities": [{"id": "cm", "name": "测试社区", "street": "st"}],
        "cells": [
            {"id": "cell-n", "name": "北网格", "community": "cm", "sites": [SITE]},
            {"id": "cell-s", "name": "南网格", "community": "cm", "sites": [OTHER]},
        ],
        "beats": [
            {"id": "beat-n", "name": "北警务区", "cells": ["cell-n"]},
            {"id": "beat-s", "name": "南警务区", "cells": ["cell-s"]},
        ],
        "people": [
            {
                "id": "desk",
                "name": "值班台",
                "roles": ["police_desk"],
                "beats": ["beat-n", "beat-s"],
            },
            {"id": "w1", "name": "网格员", "roles": ["grid_worker"], "cells": ["cell-n"]},
        ],
    }
    (tmp / "grid" / "grid.yaml").write_text(yaml.safe_dump(grid, allow_unicode=True))
    config = {
        "data_dir": str(tmp / "data"),
        "mqtt": {"host": "127.0.0.1", "port": port, "client_id": "lianfang-unregistered"},
        "database": {"url": f"sqlite:///{tmp / 'data' / 'lianfang.db'}", "batch_interval_ms": 20},
        "profiles_dir": str(ROOT / "config" / "profiles"),
        "sites_dir": str(tmp / "sites"),
        "rules_dir": str(ROOT / "config" / "rules"),
        "routing_file": str(ROOT / "config" / "routing.yaml"),
        "grid_dir": str(tmp / "grid"),
        "ingest": ingest or {},
    }
    path = tmp / "lianfang.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
