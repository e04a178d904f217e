"""ICE settings for closed networks.

aiortc asks a public STUN server when given no configuration; we always pass an explicit
list (empty by default). Which local addresses are offered as host candidates is not an
aiortc option: aioice reads every interface. ``restrict_host_addresses`` narrows that, process
wide, to the addresses a site names (the LAN interface of the guard room, or 127.0.0.1 in
tests); ``None`` restores aioice's own choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

from gateway.live.config import LiveConfig

_ORIGINAL = aioice.ice.get_host_addresses


def restrict_host_addresses(addresses: Sequence[str] | None) -> None:
    if addresses is None:
        aioice.ice.get_host_addresses = _ORIGINAL
        return
    allowed = list(dict.fromkeys(addresses))

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in allowed if (use_ipv6 if ":" in a else use_ipv4)]

    aioice.ice.get_host_addresses = host_addresses


def rtc_configuration(config: LiveConfig) -> RTCConfiguration:
    """Always explicit: an empty list means no STUN/TURN at all (aiortc's default would
    reach out to a public STUN server)."""
    servers = [
        RTCIceServer(urls=s.urls, username=s.username, credential=s.credential())
        for s in config.ice_servers
    ]
    return RTCConfiguration(iceServers=servers)
