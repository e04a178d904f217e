"""The shipped Mosquitto example really enforces what it promises (run against Mosquitto)."""

from __future__ import annotations

import getpass
import re
import subprocess
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from tests.support.brokers import MOSQUITTO, free_port, wait_port

CONFIG = Path(__file__).resolve().parent.parent / "config" / "mosquitto"
PASSWD = Path("/usr/bin/mosquitto_passwd")

pytestmark = pytest.mark.skipif(
    MOSQUITTO is None or not PASSWD.exists(), reason="needs mosquitto and mosquitto_passwd"
)


def site_config(tmp: Path, port: int) -> Path:
    """The shipped file with site paths pointed at tmp; the TLS listener becomes a plain
    loopback one (certificates are the site's), everything else is as shipped."""
    text = (CONFIG / "mosquitto.conf").read_text()
    text = re.sub(
        r"listener 8883\n(?:(?:cafile|certfile|keyfile|tls_version|protocol) .*\n)*", "", text
    )
    text = text.replace("listener 1883 127.0.0.1", f"listener {port} 127.0.0.1")
    text = text.replace("/etc/mosquitto/lianfang.passwd", str(tmp / "passwd"))
    text = text.replace("/etc/mosquitto/lianfang.acl", str(CONFIG / "lianfang.acl"))
    text = text.replace("/var/lib/mosquitto/", f"{tmp}/")
    text = text.replace("log_dest syslog", f"log_dest file {tmp}/mosquitto.log")
    text += f"\nuser {getpass.getuser()}\n"  # started as root it would drop to `mosquitto`
    path = tmp / "mosquitto.conf"
    path.write_text(text)
    return path


@pytest.fixture
def broker(tmp_path: Path):  # type: ignore[no-untyped-def]
    passwd = tmp_path / "passwd"
    passwd.touch(mode=0o600)
    for user in (
        "lianfang-gateway",
        "door-b1u1",
        "door-b2u1",
        "p-worker-4",
        "police-desk-beat-taiping-1",
    ):
        subprocess.run([str(PASSWD), "-b", str(passwd), user, f"pw-{user}"], check=True)
    port = free_port()
    assert MOSQUITTO is not None
    proc = subprocess.Popen([MOSQUITTO, "-c", str(site_config(tmp_path, port))])
    wait_port(port)
    yield port
    proc.terminate()
    proc.wait(10)


def client(
    port: int, user: str, password: str | None = None
) -> tuple[mqtt.Client, ReasonCode | None]:
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"t-{user}")
    c.username_pw_set(user, password if password is not None else f"pw-{user}")
    result: list[ReasonCode] = []
    done = threading.Event()

    def on_connect(_c, _u, _f, reason, _p):  # type: ignore[no-untyped-def]
        result.append(reason)
        done.set()

    c.on_connect = on_connect
    c.connect("127.0.0.1", port)
    c.loop_start()
    done.wait(5)
    return c, (result[0] if result else None)


def test_anonymous_and_wrong_passwords_are_refused(broker: int) -> None:
    c, reason = client(broker, "door-b1u1", "wrong")
    assert reason is not None and reason.is_failure
    c.loop_stop()
    anon = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    codes: list[ReasonCode] = []
    anon.on_connect = lambda _c, _u, _f, r, _p: codes.append(r)
    anon.connect("127.0.0.1", broker)
    anon.loop_start()
    threading.Event().wait(1)
    anon.loop_stop()
    assert codes and codes[0].is_failure


def test_a_device_can_publish_only_its_own_topics(broker: int) -> None:
    gateway, reason = client(broker, "lianfang-gateway")
    assert reason is not None and not reason.is_failure
    got: list[str] = []
    arrived = threading.Event()

    def on_message(_c, _u, msg):  # type: ignore[no-untyped-def]
        got.append(msg.topic)
        arrived.set()

    gateway.on_message = on_message
    gateway.subscribe("lianfang/+/+/event", qos=1)
    threading.Event().wait(0.3)
    door, reason = client(broker, "door-b1u1")
    assert reason is not None and not reason.is_failure
    door.publish("lianfang/demo/door-b1u1/event", b"{}", qos=1).wait_for_publish(5)  # its own
    assert arrived.wait(5)
    # Someone else's topic last: a broker may drop the connection after an ACL denial.
    door.publish("lianfang/demo/door-b2u1/event", b"{}", qos=1)
    threading.Event().wait(0.5)
    assert got == ["lianfang/demo/door-b1u1/event"]
    door.loop_stop()
    gateway.loop_stop()


@pytest.mark.parametrize(
    ("user", "own", "other"),
    [
        ("p-worker-4", "lianfang/ack/person/p-worker-4", "lianfang/ack/person/p-worker-5"),
        (
            "police-desk-beat-taiping-1",
            "lianfang/ack/police-desk/beat-taiping-1",
            "lianfang/ack/police-desk/beat-taiping-2",
        ),
    ],
)
def test_a_console_can_acknowledge_only_on_its_own_ack_topic(
    broker: int, user: str, own: str, other: str
) -> None:
    gateway, reason = client(broker, "lianfang-gateway")
    assert reason is not None and not reason.is_failure
    got: list[str] = []
    arrived = threading.Event()

    def on_message(_c, _u, msg):  # type: ignore[no-untyped-def]
        got.append(msg.topic)
        arrived.set()

    gateway.on_message = on_message
    gateway.subscribe("lianfang/ack/#", qos=1)
    threading.Event().wait(0.3)
    console, reason = client(broker, user)
    assert reason is not None and not reason.is_failure
    console.publish(own, b'{"notification_id": 1}', qos=1).wait_for_publish(5)
    assert arrived.wait(5)
    console.publish(other, b'{"notification_id": 2}', qos=1)  # last: may end the connection
    threading.Event().wait(0.5)
    assert got == [own]
    console.loop_stop()
    gateway.loop_stop()


def test_a_console_reads_only_its_own_notifications(broker: int) -> None:
    desk, reason = client(broker, "police-desk-beat-taiping-1")
    assert reason is not None and not reason.is_failure
    got: list[str] = []
    desk.on_message = lambda _c, _u, msg: got.append(msg.topic)
    desk.subscribe("lianfang/notify/police-desk/beat-taiping-1", qos=1)
    desk.subscribe("lianfang/notify/police-desk/beat-taiping-2", qos=1)
    threading.Event().wait(0.3)
    gateway, reason = client(broker, "lianfang-gateway")
    assert reason is not None and not reason.is_failure
    gateway.publish("lianfang/notify/police-desk/beat-taiping-2", b"{}", qos=1).wait_for_publish(5)
    gateway.publish("lianfang/notify/police-desk/beat-taiping-1", b"{}", qos=1).wait_for_publish(5)
    for _ in range(50):
        if got:
            break
        threading.Event().wait(0.1)
    threading.Event().wait(0.3)
    assert got == ["lianfang/notify/police-desk/beat-taiping-1"]
    desk.loop_stop()
    gateway.loop_stop()
