"""The HTTP SMS gateway driver against a local HTTP server (127.0.0.1 only): the number
decrypted at send time for a person stored through the grid store, the body built from the
template, the secret header from the environment, one audit row per send without the
number, logs that only ever show the masked form, retries on 503 through the dispatcher,
permanent failures (400, no phone, wrong key, not a person), and the configuration checks
(``lianfang config check`` names file and key)."""

from __future__ import annotations

import json
import logging
import random
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from gateway import privacy
from gateway.audit.chain import AuditLog
from gateway.audit.tables import audit_log
from gateway.bus import EventBus
from gateway.cli.config_cmd import check_all
from gateway.cli.main import app as lianfang
from gateway.config.errors import ConfigErrors
from gateway.config.settings import GatewayConfig, HttpSmsConfig, SmsConfig, load_gateway_config
from gateway.grid.model import Person, Role
from gateway.grid.store import upsert_person
from gateway.incidents.queries import get_incident
from gateway.incidents.runtime import IncidentsRuntime
from gateway.notify.base import Message, SendResult
from gateway.notify.dispatcher import Dispatcher, Outgoing
from gateway.notify.sms import LogSmsDriver, SmsNotifier, sms_text
from gateway.notify.sms_http import HttpSmsDriver
from gateway.notify.template import TemplateError, placeholders, render
from tests.incidents.helpers import CONFIG, T0, FakeClock, engine_at, panic_signal, registry
from tests.support.http_server import Server

PII_KEY = b"test-sms-pii-key-0123456789abcdef0123456789"
AUDIT_KEY = b"test-sms-audit-key"
NUMBER = "13912345678"
MASKED = "*******5678"
TOKEN = "tok-s3cret-123"
BODY = {
    "to": "{phone}",
    "content": "{text}",
    "type": "{mode}",
    "ref": "{notification_id}",
    "meta": {"incident": "{incident_id}", "who": "{recipient}", "note": "lianfang {{v1}}"},
}
PAYLOAD = {
    "occasion": "new",
    "severity": "P1",
    "title_zh": "一键报警：6-1-102 户按下报警按钮",
    "address": "示范路88号",
}


@pytest.fixture
def pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A configured personal-data key for this test only (restored afterwards)."""
    monkeypatch.delenv(privacy.KEY_ENV, raising=False)
    monkeypatch.setattr(privacy, "_key", None)
    monkeypatch.setattr(privacy, "_phone", None)
    privacy.set_pii_key(PII_KEY)


@pytest.fixture
def raw_logs() -> Iterator[None]:
    """Plain log records: the gateway's redacting record factory (installed by other tests
    in this process) would mask a leaked number and hide the leak from these tests."""
    factory = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)
    try:
        yield
    finally:
        logging.setLogRecordFactory(factory)


@pytest.fixture
def engine(tmp_path: Path, pii_key: None) -> Engine:
    """A migrated database holding p-sms (a number) and p-nophone (none), saved through the
    grid store: the number is stored encrypted, never in clear."""
    e = engine_at(tmp_path)
    upsert_person(e, Person(id="p-sms", name="测试网格员", phone=NUMBER, roles=[Role.GRID_WORKER]))
    upsert_person(e, Person(id="p-nophone", name="无电话", roles=[Role.GRID_WORKER]))
    return e


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("LIANFANG_TEST_SMS_TOKEN", TOKEN)
    return "LIANFANG_TEST_SMS_TOKEN"


def config(url: str, **extra: Any) -> HttpSmsConfig:
    return HttpSmsConfig.model_validate({"url": url, "body": BODY, **extra})


def driver(engine: Engine, url: str, **extra: Any) -> HttpSmsDriver:
    return HttpSmsDriver(config(url, **extra), engine, AuditLog(engine, AUDIT_KEY))


def message(recipient: str = "p-sms", kind: str = "person", n: int = 42) -> Message:
    return Message(n, 7, "sms", kind, recipient, "测试网格员", dict(PAYLOAD))


def audit_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(audit_log).order_by(audit_log.c.id))]


async def test_the_gateway_receives_the_decrypted_number_audited_and_masked_in_logs(
    engine: Engine,
    server: Server,
    token: str,
    raw_logs: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    d = driver(engine, server.url, auth_env=token, auth_scheme="Bearer")
    with caplog.at_level(logging.DEBUG):
        result = await SmsNotifier(d, "sms").send(message())
        await d.stop()
    assert result == SendResult.sent()

    (headers, raw), *more = server.requests
    assert not more
    assert json.loads(raw) == {
        "to": NUMBER,
        "content": "【联防】P1 一键报警：6-1-102 户按下报警按钮 示范路88号",
        "type": "sms",
        "ref": 42,  # a value that is exactly one placeholder keeps its type
        "meta": {"incident": 7, "who": "p-sms", "note": "lianfang {v1}"},
    }
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["X-Lianfang-Notification"] == "42"

    rows = audit_rows(engine)
    assert [(r["actor"], r["action"], r["target"]) for r in rows] == [
        ("gateway", "SMS send", "person/p-sms")
    ]
    assert rows[0]["after"] == {
        "person": "p-sms",
        "mode": "sms",
        "gateway": server.url.split("/")[2],
        "notification_id": 42,
        "incident_id": 7,
    }
    assert NUMBER not in json.dumps(rows, default=str, ensure_ascii=False)
    assert AuditLog(engine, AUDIT_KEY).verify().ok

    assert NUMBER not in caplog.text and TOKEN not in caplog.text
    assert any("person/p-sms" in m and MASKED in m and "sent" in m for m in caplog.messages)


async def test_voice_goes_to_the_same_gateway_with_its_mode(engine: Engine, server: Server) -> None:
    d = driver(engine, server.url)
    result = await SmsNotifier(d, "voice").send(message())
    await d.stop()
    assert result.ok
    sent = json.loads(server.requests[0][1])
    assert (sent["to"], sent["type"]) == (NUMBER, "voice")
    assert "Authorization" not in server.requests[0][0]  # no auth configured: none sent
    assert [r["action"] for r in audit_rows(engine)] == ["voice call"]


async def test_a_503_is_retried_by_the_dispatcher_then_sent(
    engine: Engine, server: Server, tmp_path: Path
) -> None:
    server.script[:] = [(503, {"Retry-After": "3"}), (200, {})]
    clock = FakeClock()
    d = driver(engine, server.url, max_attempts=4, backoff_s=1)
    recorded: list[tuple[Any, ...]] = []

    async def run_db(fn: Any, *args: Any) -> Any:
        for a in args[1]:  # record_attempts(engine, attempts)
            recorded.append((a.status, a.attempts, a.at, a.next_at, a.error))
        return None

    notifier = SmsNotifier(d, "sms")
    dispatcher = Dispatcher(
        engine,
        {"sms": notifier},
        clock=clock,
        run_db=run_db,
        policies={"sms": d.policy},
        rng=random.Random(3),
    )
    dispatcher.submit([Outgoing(42, 7, "sms", "person", "p-sms", "测试网格员", PAYLOAD, T0)])
    await dispatcher.drain()
    status, attempts, _at, next_at, error = recorded[-1]
    assert (status, attempts, error) == ("retry", 1, "HTTP 503")
    assert (next_at - T0).total_seconds() == 3  # Retry-After over the 0.5–1 s backoff
    clock.advance(3)
    await dispatcher.tick()
    await dispatcher.drain()
    assert recorded[-1][:2] == ("sent", 2)
    assert [json.loads(body)["to"] for _, body in server.requests] == [NUMBER, NUMBER]
    assert len(audit_rows(engine)) == 2  # each send that decrypted the number
    await d.stop()


@pytest.mark.parametrize(
    ("status", "headers", "retryable", "retry_after"),
    [
        (400, {}, False, None),
        (404, {}, False, None),
        (429, {"Retry-After": "7"}, True, 7.0),
        (500, {}, True, None),
    ],
)
async def test_http_answers_are_classified_like_the_webhooks(
    engine: Engine,
    server: Server,
    status: int,
    headers: dict[str, str],
    retryable: bool,
    retry_after: float | None,
) -> None:
    server.script[:] = [(status, headers)]
    d = driver(engine, server.url)
    result = await SmsNotifier(d).send(message())
    await d.stop()
    assert (result.ok, result.retryable, result.error) == (False, retryable, f"HTTP {status}")
    assert result.retry_after_s == retry_after


async def test_a_400_is_a_permanent_failure_through_the_dispatcher(
    engine: Engine, server: Server
) -> None:
    server.script[:] = [(400, {})]
    d = driver(engine, server.url)
    recorded: list[tuple[Any, ...]] = []

    async def run_db(fn: Any, *args: Any) -> Any:
        for a in args[1]:  # record_attempts(engine, attempts)
            recorded.append((a.status, a.attempts, a.at, a.next_at, a.error))
        return None

    dispatcher = Dispatcher(
        engine,
        {"sms": SmsNotifier(d)},
        clock=FakeClock(),
        run_db=run_db,
        policies={"sms": d.policy},
    )
    dispatcher.submit([Outgoing(42, 7, "sms", "person", "p-sms", "测试网格员", PAYLOAD, T0)])
    await dispatcher.drain()
    assert [r[:2] for r in recorded] == [("dead", 1)]
    assert recorded[0][4] == "HTTP 400"
    assert len(server.requests) == 1
    await d.stop()


async def test_refused_connection_and_timeout_are_retryable(engine: Engine) -> None:
    refused = driver(engine, "http://127.0.0.1:9/sms", timeout_s=1)
    result = await SmsNotifier(refused).send(message())
    await refused.stop()
    assert result.retryable and not result.ok
    assert NUMBER not in result.error

    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        slow = driver(engine, f"http://127.0.0.1:{port}/sms", timeout_s=0.3)
        result = await SmsNotifier(slow).send(message())
        await slow.stop()
    assert result == SendResult.retry("timed out after 0.3s")


async def test_a_person_without_a_phone_is_a_failed_result_with_a_reason(
    engine: Engine, server: Server
) -> None:
    d = driver(engine, server.url)
    result = await SmsNotifier(d).send(message("p-nophone"))
    await d.stop()
    assert (result.ok, result.retryable) == (False, False)
    assert result.error == "person p-nophone has no phone number"
    assert not server.requests and not audit_rows(engine)


@pytest.mark.parametrize(
    ("kind", "recipient", "reason"),
    [
        ("person", "p-gone", "no grid person p-gone (removed from the grid?)"),
        (
            "police-desk",
            "beat-1",
            "police-desk/beat-1 has no phone number: only grid people are reached by sms",
        ),
    ],
)
async def test_a_recipient_without_a_number_is_a_failed_result(
    engine: Engine, server: Server, kind: str, recipient: str, reason: str
) -> None:
    d = driver(engine, server.url)
    result = await SmsNotifier(d).send(message(recipient, kind))
    await d.stop()
    assert result == SendResult.fail(reason)
    assert not server.requests and not audit_rows(engine)


async def test_a_wrong_pii_key_is_a_failed_result_not_an_exception(
    engine: Engine, server: Server, raw_logs: None, caplog: pytest.LogCaptureFixture
) -> None:
    privacy.set_pii_key(b"another-key-than-the-one-that-encrypted-it")
    d = driver(engine, server.url)
    with caplog.at_level(logging.DEBUG):
        result = await SmsNotifier(d).send(message())
    await d.stop()
    assert (result.ok, result.retryable) == (False, False)
    assert result.error.startswith("phone number of person p-sms cannot be decrypted: ")
    assert "wrong LIANFANG_PII_KEY" in result.error
    assert not server.requests and not audit_rows(engine)  # nothing revealed, nothing audited
    assert NUMBER not in caplog.text


async def test_no_audit_row_means_no_send(engine: Engine, server: Server) -> None:
    class BrokenAudit(AuditLog):
        def append(self, *_: Any, **__: Any) -> int:
            raise OSError("disk full")

    d = HttpSmsDriver(config(server.url), engine, BrokenAudit(engine, AUDIT_KEY))
    result = await SmsNotifier(d).send(message())
    await d.stop()
    assert result.retryable and "audit row not written" in result.error
    assert not server.requests


async def test_the_runtime_sends_a_panic_to_the_grid_workers_phone(
    tmp_path: Path, server: Server, pii_key: None
) -> None:
    """Wired as ``lianfang run`` does it: ``sms:`` from the gateway config; the demo grid
    (config/grid) imported under the key; a panic's SMS reaches p-worker-4's number."""
    sms = SmsConfig(driver="http", http=config(server.url))
    r = IncidentsRuntime(
        engine_at(tmp_path),
        EventBus(),
        registry(),
        config_dir=CONFIG,
        data_dir=tmp_path,
        mqtt=None,
        clock=FakeClock(),
        rule_dir=CONFIG / "rules",
        tick_s=3600,
        sms=sms,  # no audit log given: one on <data_dir>/audit.key
    )
    assert r.dispatcher.policies == {}  # filled at start
    await r.start()
    try:
        assert r.dispatcher.policies["sms"] == r.dispatcher.policies["voice"]
        await r.emit(panic_signal())
        await r.dispatcher.drain()
        sent = [json.loads(body) for _, body in server.requests]
        assert [(s["to"], s["meta"]["who"]) for s in sent] == [("13800000024", "p-worker-4")]
        inc = await r.service.run_db(get_incident, r.engine, 1)
        assert inc is not None
        assert [d["status"] for d in inc["deliveries"] if d["channel"] == "sms"] == ["sent"]
        assert [row["target"] for row in audit_rows(r.engine)] == ["person/p-worker-4"]
        assert (tmp_path / "audit.key").stat().st_mode & 0o077 == 0
    finally:
        await r.stop()


# -- configuration ----------------------------------------------------------------------


def _gateway_file(tmp_path: Path, sms: str) -> Path:
    """A gateway file in ``tmp_path`` using the repository's profiles, sites, rules, grid…"""
    path = tmp_path / "lianfang.yaml"
    folders = "".join(
        f"{key}: {CONFIG / name}\n"
        for key, name in [
            ("profiles_dir", "profiles"),
            ("sites_dir", "sites"),
            ("rules_dir", "rules"),
            ("cameras_file", "cameras.yaml"),
            ("onvif_file", "onvif.yaml"),
            ("routing_file", "routing.yaml"),
            ("grid_dir", "grid"),
        ]
    )
    path.write_text(f"data_dir: data\n{folders}sms:\n{sms}", encoding="utf-8")
    return path


def test_the_log_driver_stays_the_default(tmp_path: Path) -> None:
    assert GatewayConfig().sms == SmsConfig(driver="log")
    assert load_gateway_config(CONFIG / "lianfang.yaml").sms.http is None
    r = IncidentsRuntime(
        engine_at(tmp_path), EventBus(), registry(), CONFIG, tmp_path, None,
        rule_dir=CONFIG / "rules",
    )  # fmt: skip
    assert isinstance(r.sms, LogSmsDriver)
    summary, errors = check_all(_gateway_file(tmp_path, "  driver: log\n"))
    assert not errors
    assert "sms: log driver (recipient ids logged, nothing sent)" in summary


def test_config_check_names_the_file_and_key_of_a_bad_url_and_a_missing_env_name(
    tmp_path: Path,
) -> None:
    path = _gateway_file(
        tmp_path,
        "  driver: http\n"
        "  http:\n"
        "    url: sms-gateway.local/send\n"  # no scheme
        "    auth_header: X-Api-Key\n"  # but no auth_env naming the secret's variable
        '    body: {to: "{phone}", text: "{txt}"}\n',
    )
    _, errors = check_all(path)
    found = {(e.file, e.key_path): e.message for e in errors}
    assert set(found) == {
        (str(path), "sms.http.url"),
        (str(path), "sms.http.auth_header"),
        (str(path), "sms.http.body"),
    }
    assert "http:// or https://" in found[(str(path), "sms.http.url")]
    assert "needs auth_env" in found[(str(path), "sms.http.auth_header")]
    assert "unknown placeholder {txt}" in found[(str(path), "sms.http.body")]

    run = CliRunner().invoke(lianfang, ["config", "check", str(path)])
    assert run.exit_code == 1
    assert f"{path}: sms.http.url:" in run.output


@pytest.mark.parametrize(
    ("sms", "key", "message"),
    [
        ("  driver: http\n", "sms", "driver http needs an http: section"),
        (
            "  http: {url: 'https://sms.local/send'}\n",
            "sms",
            "only used with driver: http",
        ),
        (
            "  driver: http\n  http: {url: 'https://u:p@sms.local/send'}\n",
            "sms.http.url",
            "no credentials in the URL",
        ),
        (
            "  driver: http\n  http: {url: 'https://sms.local/send', auth_env: 'sk-123.abc'}\n",
            "sms.http.auth_env",
            "not the secret itself",
        ),
        (
            "  driver: http\n  http: {url: 'https://sms.local/{phone}'}\n",
            "sms.http.url",
            "no placeholders in the URL",
        ),
        (
            "  driver: http\n  http: {url: 'https://sms.local/s', body: {to: '{phone}'}}\n",
            "sms.http.body",
            "must use {text}",
        ),
        (
            "  driver: http\n  http: {url: 'http://sms.local/s', tls_verify: false}\n",
            "sms.http",
            "apply to https:// URLs only",
        ),
        (
            "  driver: http\n  http: {url: 'https://sms.local/s', secret: 'x'}\n",
            "sms.http.secret",
            "unknown key",
        ),
    ],
)
def test_config_errors_name_their_key(tmp_path: Path, sms: str, key: str, message: str) -> None:
    path = _gateway_file(tmp_path, sms)
    _, errors = check_all(path)
    assert [(e.file, e.key_path) for e in errors] == [(str(path), key)]
    assert message in errors[0].message


def test_an_unset_secret_variable_stops_start_up_naming_the_key(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LIANFANG_TEST_SMS_UNSET", raising=False)
    with pytest.raises(ConfigErrors) as caught:
        driver(engine, "https://sms.local/send", auth_env="LIANFANG_TEST_SMS_UNSET")
    (error,) = caught.value.errors
    assert (error.file, error.key_path) == ("<env>", "sms.http.auth_env")
    assert "LIANFANG_TEST_SMS_UNSET is not set" in error.message


def test_a_ca_file_is_resolved_against_the_config_and_must_load(
    tmp_path: Path, engine: Engine
) -> None:
    path = _gateway_file(
        tmp_path, "  driver: http\n  http: {url: 'https://sms.local/s', ca_file: ca.pem}\n"
    )
    http = load_gateway_config(path).sms.http
    assert http is not None and http.ca_file == (tmp_path / "ca.pem").resolve()
    with pytest.raises(ConfigErrors) as caught:
        HttpSmsDriver(http, engine, AuditLog(engine, AUDIT_KEY))
    assert caught.value.errors[0].key_path == "sms.http.ca_file"


# -- template and text --------------------------------------------------------------------


def test_the_template_substitutes_values_only_and_cannot_be_escaped() -> None:
    known = frozenset({"phone", "text"})
    template = {"{phone}": "{phone}", "msg": "说：{text}", "list": ["{text}", 1, None, True]}
    assert placeholders(template, known) == {"phone", "text"}
    text = 'a "quoted" }{ text {phone}'
    body = render(template, {"phone": NUMBER, "text": text})
    assert body == {"{phone}": NUMBER, "msg": f"说：{text}", "list": [text, 1, None, True]}
    assert json.loads(json.dumps(body)) == body  # the text stays one JSON string
    for bad in ("{phone.__class__}", "{text[0]}", "{0}", "{}", "a } b", "{phone"):
        with pytest.raises(TemplateError):
            placeholders({"to": bad}, known)


def test_the_text_says_when_it_is_not_a_first_alarm() -> None:
    assert sms_text(PAYLOAD) == "【联防】P1 一键报警：6-1-102 户按下报警按钮 示范路88号"
    cancel = sms_text({**PAYLOAD, "occasion": "cancel"})
    assert cancel.startswith("【联防】已撤销 P1 一键报警")
    assert sms_text({"occasion": "escalation", "severity": "P2", "title_zh": "门禁告警"}) == (
        "【联防】升级 P2 门禁告警"
    )
