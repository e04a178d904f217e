"""One fault, start to finish: a fresh broker, database and gateway process in a temporary
folder; the load; the fault mid-stream; recovery; drain; the count."""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bench.chaos import load
from bench.chaos.accounting import percentile_ms, tally
from bench.chaos.faults import Scenario
from bench.chaos.proxy import CuttableProxy
from bench.chaos.sinks import Sink
from bench.chaos.site import ROOT, write_gateway_config
from bench.chaos.stack import Database, GatewayProcess, ShippedMosquitto, free_port
from bench.ingest import bench_database

SETTLE_S = 10.0  # the database unchanged this long: drained
DRAIN_CAP_S = 300.0
PROBE_CAP_S = 300.0


@dataclass
class Options:
    database_url: str | None
    rate: float
    storm_rate: float
    duration: float
    panics_per_s: float
    keep: bool = False
    skew_s: float = 86_400
    checkout: Path | None = None  # the gateway of another checkout (--gateway-checkout)


@dataclass
class Run:
    """What a fault can reach while it runs."""

    workdir: Path
    data_dir: Path
    url: str  # the bench's own connection
    broker: ShippedMosquitto
    gateway: GatewayProcess = field(init=False)
    proxy: CuttableProxy | None = None
    webhook: Sink | None = None
    sms: Sink | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    cleanups: list[Callable[[], object]] = field(default_factory=list)

    def sqlite_path(self) -> Path | None:
        parsed = make_url(self.url)
        return (
            Path(parsed.database)
            if parsed.get_backend_name() == "sqlite" and parsed.database
            else None
        )


def _gateway_url(run: Run) -> str:
    """PostgreSQL through a proxy the bench can cut; SQLite as it is."""
    parsed = make_url(run.url)
    if parsed.get_backend_name() != "postgresql":
        return run.url
    run.proxy = CuttableProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
    return parsed.set(host="127.0.0.1", port=run.proxy.port).render_as_string(hide_password=False)


def _wait_stored(db: Database, event_id: str, cap_s: float) -> float | None:
    deadline = time.monotonic() + cap_s
    while time.monotonic() < deadline:
        try:
            if db.has_event(event_id):
                return time.time()
        except Exception:
            pass
        time.sleep(0.2)
    return None


def _drain(db: Database, cap_s: float) -> None:
    """Until the events table has not grown for SETTLE_S."""
    deadline = time.monotonic() + cap_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        try:
            count = db.event_count()
        except Exception:
            count = last
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= SETTLE_S:
            return
        time.sleep(1)


def _settle_notifications(db: Database, cap_s: float) -> float | None:
    """Until no outbox row is pending or waiting for a retry; the time it happened."""
    deadline = time.monotonic() + cap_s
    while time.monotonic() < deadline:
        rows = db.notifications()
        if not any(r["status"] in ("pending", "retry") for r in rows):
            return time.time()
        time.sleep(0.5)
    return None


def run_fault(scenario: Scenario, options: Options) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"lianfang-chaos-{scenario.name}-") as tmp:
        workdir = Path(tmp)
        broker = ShippedMosquitto(workdir / "mosquitto")
        broker.workdir.mkdir()
        broker.start()
        try:
            with bench_database(options.database_url, workdir) as url:
                result = _run(scenario, options, workdir, broker, url)
        finally:
            broker.stop()
            if options.keep:
                import shutil

                kept = (
                    Path(tempfile.gettempdir()) / f"chaos-kept-{scenario.name}-{int(time.time())}"
                )
                shutil.copytree(workdir, kept, ignore=shutil.ignore_patterns("*.db*"))
    return result


def _run(
    scenario: Scenario, options: Options, workdir: Path, broker: ShippedMosquitto, url: str
) -> dict[str, Any]:
    data_dir = workdir / "data"
    data_dir.mkdir()
    run = Run(workdir, data_dir, url, broker)
    try:
        return _stream(scenario, options, run)
    finally:
        for cleanup in reversed(run.cleanups):
            cleanup()
        if run.proxy is not None:
            run.proxy.close()
        for sink in (run.webhook, run.sms):
            if sink is not None:
                sink.close()


def _stream(scenario: Scenario, options: Options, run: Run) -> dict[str, Any]:
    if scenario.prepare is not None:
        scenario.prepare(run)
    if scenario.sinks:
        run.webhook, run.sms = Sink("webhook"), Sink("sms")
    api_port = free_port()
    config = write_gateway_config(
        run.workdir,
        mqtt_port=run.broker.port,
        api_port=api_port,
        database_url=_gateway_url(run),
        data_dir=run.data_dir,
        webhook_url=run.webhook.url if run.webhook else None,
        sms_url=run.sms.url if run.sms else None,
        root=options.checkout or ROOT,
    )
    run.gateway = GatewayProcess(
        config, api_port, run.workdir / "gateway.log", checkout=options.checkout
    )
    run.gateway.start()
    run.gateway.wait_ready()
    db = Database(run.url)
    desk = load.Desk(run.broker.port)
    prober = load.Prober(run.broker.port)
    first = prober.send()
    if _wait_stored(db, first, 60) is None:
        raise RuntimeError(f"the gateway stores nothing before the fault: {run.gateway.log}")

    rate = options.storm_rate if scenario.storm else options.rate
    summary_path = run.workdir / "publisher.json"
    publisher = load.spawn(
        run.broker.port,
        summary_path,
        rate=rate,
        duration=options.duration,
        panics_per_s=options.panics_per_s,
        kind=scenario.kind,
        skew_s=options.skew_s if scenario.skew else 0,
        flap=scenario.flap,
    )
    recovery_s: float | None = None
    fault_window: tuple[float, float] | None = None
    if scenario.inject is not None:
        time.sleep(options.duration / 3)
        injected = time.time()
        recovered = scenario.inject(run)
        fault_window = (injected, recovered)
        if run.gateway.proc is not None and run.gateway.proc.poll() is not None:
            run.extra["gateway_exited"] = run.gateway.proc.returncode
            run.gateway.start()
        probe = prober.send()
        stored_at = _wait_stored(db, probe, PROBE_CAP_S)
        recovery_s = None if stored_at is None else round(stored_at - recovered, 2)
        if (
            scenario.name in ("gateway_kill", "broker_kill_backlog")
            or "gateway_exited" in run.extra
        ):
            run.gateway.wait_ready()
    publisher.wait()
    if run.gateway.proc is not None and run.gateway.proc.poll() is not None:
        run.extra["gateway_exited"] = run.gateway.proc.returncode
        run.gateway.start()
        run.gateway.wait_ready()
    _drain(db, DRAIN_CAP_S)
    settled = _settle_notifications(db, 120 if scenario.sinks else 30)
    if scenario.sinks and settled is not None and fault_window is not None:
        # the notifiers' recovery: from their receivers answering again to an empty queue
        run.extra["notifications_settled_s"] = round(settled - fault_window[1], 2)
    time.sleep(1)
    desk.close()
    prober.close()
    run.gateway.stop()

    sent = json.loads(summary_path.read_text())
    panics: dict[str, float] = sent["panics"]
    incidents = db.incidents()
    counted = tally(
        sent["ids"],
        db.event_ids(),
        panics,
        [(i["event_ids"], i["device_id"]) for i in incidents if i["category"] == "panic"],
    )
    result: dict[str, Any] = {"fault": scenario.name, **counted.as_dict(), "recovery_s": recovery_s}
    latencies = [desk.arrivals[e] - t for e, t in panics.items() if e in desk.arrivals]
    if scenario.storm:
        result["panic_p99_ms"] = percentile_ms(latencies, 0.99)
        result["panic_p50_ms"] = percentile_ms(latencies, 0.50)
    result["rate"] = rate
    result["unacked_by_broker"] = sent["unacked"]
    result["panics_notified"] = len(latencies)
    result["panics_notified_twice"] = sum(1 for n in desk.news.values() if n > 1)
    result["panics_told_unstored"] = len(desk.unstored)
    if fault_window is not None:
        start, end = fault_window
        during = {e: t for e, t in panics.items() if start <= t < end}
        result["fault_s"] = round(end - start, 1)
        result["panics_during_fault"] = len(during)
        result["notified_during_fault"] = sum(
            1 for e in during if e in desk.arrivals and desk.arrivals[e] < end
        )
    quarantined = db.quarantine_reasons()
    if quarantined:
        result["quarantined"] = quarantined
        result["quarantine_samples"] = db.quarantine_samples()
    if scenario.flap:
        result["status_sent"] = sent["status_sent"]
        result["status_stored"] = db.status_events()
    result["incidents_by_category"] = dict(Counter(i["category"] for i in incidents))
    rows = db.notifications()
    # sent, yet never recorded as sent (or never retried): sent again after a restart
    result["outbox_unsettled"] = sum(1 for r in rows if r["status"] in ("pending", "retry"))
    if scenario.sinks:
        by_channel: dict[str, Counter[str]] = {}
        for row in rows:
            key = "sms" if row["channel"] == "sms" else row["channel"].split(":")[0]
            by_channel.setdefault(key, Counter())[row["status"]] += 1
        result["outbox"] = {k: dict(v) for k, v in sorted(by_channel.items())}
        result["webhook"] = run.webhook.summary() if run.webhook else None
        result["sms"] = run.sms.summary() if run.sms else None
        log_text = run.gateway.log.read_text(errors="replace")
        result["dead_letter_log_lines"] = log_text.count(" is dead after ")
    log_text = run.gateway.log.read_text(errors="replace")
    result["gateway_log_errors"] = log_text.count(" ERROR ")
    result.update(run.extra)
    db.dispose()
    return result
