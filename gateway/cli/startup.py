"""Start-up checks that fail before anything is printed as running: a taken port, a data folder
held by another gateway, errors we know (unset secrets, missing keys, bad configuration).

Each becomes a ``StartupError``: one line (Chinese first, English second) and a non-zero exit,
never a traceback.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path


class StartupError(Exception):
    """A reason the gateway cannot start that the operator can act on; ``str`` is the line."""


def bind_api_socket(host: str, port: int) -> socket.socket:
    """The API's listening socket, bound now so a taken port is found before any banner.

    Handed to uvicorn (``Server.serve(sockets=[...])``), so nothing else can take the port in
    between."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"端口 {port} 已被占用 / port {port} on {host} is already in use "
                f"(another Lianfang or another program): choose another with --port"
            ) from None
        if exc.errno == errno.EACCES:
            raise StartupError(
                f"无权使用端口 {port} / not allowed to listen on {host}:{port} "
                f"(ports below 1024 need privileges): choose another with --port"
            ) from None
        raise StartupError(
            f"无法监听 / cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def lock_holder(lock_file: Path) -> str:
    """Who holds a gateway's lock file: ``process 1234 (lianfang demo --port 8000)``, or as
    much of that as can be read (the file holds the holder's pid)."""
    try:
        pid = int(lock_file.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return "another process"
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return f"process {pid}"
    args = [a for a in raw.decode("utf-8", "replace").split("\0") if a]
    # "python .../bin/lianfang demo" reads better as "lianfang demo"
    while args and not Path(args[0]).name.startswith("lianfang") and len(args) > 1:
        if Path(args[0]).name.startswith("python"):
            args = args[1:]
            continue
        break
    if args:
        args[0] = Path(args[0]).name
    command = " ".join(args)[:200]
    return f"process {pid} ({command})" if command else f"process {pid}"


def data_folder_in_use(lock_file: Path, data_dir: Path) -> StartupError:
    return StartupError(
        f"数据目录正被使用 / the data folder {data_dir} is in use by {lock_holder(lock_file)}: "
        f"stop that one first, or give this one another --data-dir"
    )


def check_data_folder_free(
    data_dir: Path, client_id: str, *, lock_file: Path | None = None
) -> None:
    """Fail now, before anything starts, when another gateway consumes from this data folder
    (the gateway takes the lock for good when it starts; this is the early, friendly check).
    ``lock_file``: another lock than the consumer's (a cluster worker's own)."""
    from gateway.ingest.mqtt import ConsumerLockError, SingleConsumerLock, consumer_lock_path

    lock = SingleConsumerLock(lock_file or consumer_lock_path(data_dir, client_id))
    try:
        lock.acquire()
    except ConsumerLockError as exc:
        raise data_folder_in_use(exc.path, data_dir) from None
    lock.release()


def check_cluster_database(enabled: bool, database_url: str) -> None:
    """Cluster mode shares the sites through leases in PostgreSQL: SQLite cannot be shared."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if not enabled:
        return
    try:
        backend = make_url(database_url).get_backend_name()
    except ArgumentError:
        backend = database_url.split(":", 1)[0]
    if backend != "postgresql":
        raise StartupError(
            f"集群模式需要 PostgreSQL / cluster mode needs PostgreSQL, but database.url is "
            f"{backend} (SQLite serves one process only): set database.url to "
            f"postgresql+psycopg://… or cluster.enabled to false"
        )


def check_receiver_ports(host: str, ports: dict[str, int]) -> None:
    """Fail now when a receiver's port (TCP and UDP: SIA DC-09, GB/T 28181) is taken; the
    option that sets it is named (``{"--sia-port": 7000}``)."""
    for option, port in ports.items():
        for kind, name in ((socket.SOCK_STREAM, "TCP"), (socket.SOCK_DGRAM, "UDP")):
            with socket.socket(socket.AF_INET, kind) as probe:
                try:
                    probe.bind((host, port))
                except OSError as exc:
                    raise StartupError(
                        f"端口 {port} 已被占用 / {name} port {port} on {host} is not free "
                        f"({exc.strerror or exc}): choose another with {option}"
                    ) from None
