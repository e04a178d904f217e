"""Incident vocabulary shared by incidents, routing and notification."""

from __future__ import annotations

from enum import StrEnum


class IncidentCategory(StrEnum):
    # from rule signals (``rules.model.Category``)
    PANIC = "panic"  # 一键报警
    INTRUSION = "intrusion"  # 周界入侵
    ACCESS = "access"  # 门禁
    VEHICLE = "vehicle"  # 车辆
    DEVICE_HEALTH = "device-health"  # 设备故障
    # from manual and 随手报 reports
    HAZARD = "hazard"  # 安全隐患
    DISPUTE = "dispute"  # 矛盾纠纷
    FIRE = "fire"  # 消防
    PUBLIC_ORDER = "public-order"  # 治安
    RENTAL = "rental"  # 出租房
    OTHER = "other"


class Source(StrEnum):
    RULE = "rule"  # a rules-engine signal
    MANUAL = "manual"  # filed by staff (patrol report, phone call)
    HAZARD = "hazard"  # a resident's 随手报


class Severity(StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"
