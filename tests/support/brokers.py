"""Test brokers: a private Mosquitto on a free loopback port (or the embedded amqtt broker)."""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@dataclass
class MosquittoBroker:
    """Mosquitto with persistence in a temp dir, as our shipped config runs it."""

    workdir: Path
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = None
    kind: str = "mosquitto"

    def write_config(self) -> Path:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            "\n".join([
                f"listener {self.port} 127.0.0.1",
                # Mosquitto started as root drops to the `mosquitto` user, which cannot write
                # our temp dir (persistence, log): stay the user who runs the tests.
                f"user {getpass.getuser()}",
                "allow_anonymous true",
                "persistence true",
                f"persistence_location {self.workdir}/",
                "autosave_interval 1",
                "max_inflight_messages 0",
                "max_queued_messages 0",
                "set_tcp_nodelay true",
                f"log_dest file {self.workdir}/mosquitto.log",
                "",
            ])
        )  # fmt: skip
        return conf

    def start(self) -> None:
        assert MOSQUITTO is not None
        conf = self.write_config()
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(self.port)

    def stop(self) -> None:
        """Graceful stop: Mosquitto writes its persistence file."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
