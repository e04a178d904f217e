"""Run the ingest side of a gateway (no HTTP API) until SIGTERM; used by crash/restart tests.

python -m tests.support.ingest_process CONFIG.yaml [v5|v311] [stall-incidents]

``stall-incidents``: incident storage never finishes (a gateway that dies after committing
a panic but before its incident is stored).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from gateway.config.settings import load_gateway_config
from gateway.runtime import Gateway


async def main(config_path: Path, protocol: str, stall_incidents: bool = False) -> None:
    gateway = Gateway(
        load_gateway_config(config_path), protocol="v311" if protocol == "v311" else "v5"
    )
    if stall_incidents:

        async def never(*_args: object) -> None:
            await asyncio.Event().wait()

        gateway.incidents.service.signals._store_open = never
    await gateway.start()
    if not await gateway.wait_subscribed(30):
        raise SystemExit("broker did not grant the subscriptions")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await gateway.stop()


if __name__ == "__main__":
    asyncio.run(
        main(
            Path(sys.argv[1]),
            sys.argv[2] if len(sys.argv) > 2 else "v5",
            stall_incidents="stall-incidents" in sys.argv[3:],
        )
    )
