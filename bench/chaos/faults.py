"""The faults: what each one prepares, injects mid-stream and undoes.

Each ``inject`` blocks for the fault, then undoes it and returns the wall-clock time of that
recovery action; the runner measures from there how long the gateway takes to store new
traffic again (``recovery_s``). A scenario without a fault (storm, clock skew, flapping) has
no ``inject``: its load is the fault.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.chaos.runner import Run

OUTAGE_S = 20.0  # database outage, disk full
NOTIFIER_ERROR_S = 15.0  # notifier outage: 500s, then
NOTIFIER_HANG_S = 15.0  # no answer at all


@dataclass(frozen=True)
class Scenario:
    name: str
    inject: Callable[[Run], float] | None = None
    prepare: Callable[[Run], None] | None = None
    kind: str = "paho"  # the publisher (bench/chaos/load.py)
    storm: bool = False  # at --storm-rate instead of --rate
    skew: bool = False  # device clocks off by --skew-s (a day), either way
    flap: bool = False
    sinks: bool = False  # webhook and SMS gateway are the bench's HTTP receivers
    notes: dict[str, Any] = field(default_factory=dict)


def _watch_health(run: Run, seconds: float) -> None:
    """Hold a fault for ``seconds``, noting what /api/health says every 2 s."""
    end = time.monotonic() + seconds
    seen: list[str] = []
    while time.monotonic() < end:
        report = run.gateway.health()
        if report is None:
            seen.append("no answer")
        else:
            db_ok = report.get("database", {}).get("ok")
            writer = report.get("writer", {})
            # database_down_since, ingest_paused: reported by gateways that track outages
            down = "database down" if writer.get("database_down_since") else ""
            paused = "ingest paused" if writer.get("ingest_paused") else ""
            marks = ", ".join(m for m in (down, paused) if m)
            seen.append(
                f"{report.get('status')} (database ok: {db_ok}{', ' if marks else ''}{marks})"
            )
        time.sleep(min(2.0, max(0.0, end - time.monotonic())))
    run.extra["health_during_fault"] = sorted(set(seen))


def gateway_kill(run: Run) -> float:
    run.gateway.kill()
    time.sleep(1)
    recovered = time.time()
    run.gateway.start()
    return recovered


def broker_kill(run: Run) -> float:
    run.broker.kill()
    time.sleep(2)
    recovered = time.time()
    run.broker.start()  # same port, same persistence folder and file
    return recovered


def broker_kill_backlog(run: Run) -> float:
    """The harder broker crash: the gateway is down (SIGKILL) for 5 s, so the broker holds a
    backlog it has acknowledged to the devices, then the broker is killed too (a power cut
    of the box both run on). What it accepted since its last autosave (``autosave_interval
    1``) is gone. Both are started again, the broker first. (Freezing the gateway with
    SIGSTOP instead loses nothing: with ``max_inflight_messages 0`` the broker has already
    pushed the backlog into the gateway's socket buffer, which the gateway reads when thawed.)"""
    run.gateway.kill()
    time.sleep(5)
    run.broker.kill()
    time.sleep(2)
    recovered = time.time()
    run.broker.start()
    run.gateway.start()
    return recovered


def database_outage(run: Run) -> float:
    if run.proxy is not None:  # PostgreSQL through the bench's proxy: unreachable
        run.proxy.cut()
        run.extra["outage"] = (
            f"PostgreSQL unreachable (proxy cut, connections refused) {OUTAGE_S:g}s"
        )
        _watch_health(run, OUTAGE_S)
        recovered = time.time()
        run.proxy.restore()
        return recovered
    path = run.sqlite_path()
    assert path is not None
    # Another connection holds the write lock: the gateway's writers get "database is locked".
    holder = sqlite3.connect(path, timeout=30, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    run.extra["outage"] = f"SQLite locked (BEGIN EXCLUSIVE by another connection) {OUTAGE_S:g}s"
    try:
        _watch_health(run, OUTAGE_S)
    finally:
        recovered = time.time()
        holder.execute("ROLLBACK")
        holder.close()
    return recovered


def mount_small_disk(run: Run) -> None:
    """The data folder on its own 256 MB tmpfs (needs root and mount rights)."""
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256m,mode=0700", "tmpfs", str(run.data_dir)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RuntimeError(f"cannot mount a tmpfs on the data folder: {exc}") from exc
    run.cleanups.append(lambda: subprocess.run(["umount", "-l", str(run.data_dir)], check=False))


def fill(folder: Path) -> Path:
    """Write a file in ``folder`` until the file system has no byte left."""
    filler = folder / "chaos-filler.bin"
    block = b"\0" * (1 << 20)
    with filler.open("wb", buffering=0) as out:
        for size in (1 << 20, 1 << 12, 1):
            chunk = block[:size]
            while True:
                try:
                    out.write(chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return filler


def disk_full(run: Run) -> float:
    filler = fill(run.data_dir)
    stat = os.statvfs(run.data_dir)
    run.extra["outage"] = (
        f"data folder's tmpfs full ({stat.f_bavail * stat.f_frsize} bytes free) {OUTAGE_S:g}s"
    )
    try:
        _watch_health(run, OUTAGE_S)
    finally:
        recovered = time.time()
        with contextlib.suppress(OSError):
            filler.unlink()
    return recovered


def notifier_outage(run: Run) -> float:
    sinks = [s for s in (run.webhook, run.sms) if s is not None]
    for sink in sinks:
        sink.set_mode("error")
    time.sleep(NOTIFIER_ERROR_S)
    for sink in sinks:
        sink.set_mode("hang")
    time.sleep(NOTIFIER_HANG_S)
    recovered = time.time()
    for sink in sinks:
        sink.set_mode("ok")
    return recovered


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("gateway_kill", inject=gateway_kill),
        Scenario("broker_kill", inject=broker_kill),
        Scenario("broker_kill_backlog", inject=broker_kill_backlog),
        Scenario("database_outage", inject=database_outage),
        Scenario("disk_full", inject=disk_full, prepare=mount_small_disk),
        Scenario("notifier_outage", inject=notifier_outage, sinks=True),
        Scenario("storm", kind="lean", storm=True),
        Scenario("clock_skew", skew=True),
        Scenario("flapping", flap=True),
    )
}
