"""Keep aiortc's ICE on the addresses we allow, and never on a STUN server we did not name.

aiortc exposes no option to choose local interfaces: aioice gathers a host candidate on
every non-loopback address it finds (``aioice.ice.get_host_addresses``). In the analysis
worker (a process of its own) we therefore wrap that one function with a filter on the
configured networks, and, independently, check the SDP we are about to send: a candidate
outside the allowed networks makes us refuse to connect (fail closed) instead of leaking
traffic onto an interface nobody meant. aiortc's default configuration also adds Google's
public STUN server; ``rtc_configuration`` always passes an explicit (possibly empty) list.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Any, cast

import aioice.ice
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer

from video.media.errors import IcePolicyError

_ORIGINAL_GET_HOST_ADDRESSES = aioice.ice.get_host_addresses
_CANDIDATE = re.compile(r"^a=candidate:\S+ \d+ \S+ \d+ (\S+) \d+ typ (\S+)", re.MULTILINE)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(networks: Sequence[str]) -> list[Network]:
    """``["192.0.2.2/32", "10.0.0.0/8"]`` → network objects; an empty list allows nothing."""
    return [ipaddress.ip_network(n, strict=False) for n in networks]


def _allowed(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return any(ip in network for network in networks)


def restrict_host_addresses(networks: Sequence[str]) -> None:
    """From now on, this process's aioice gathers host candidates only inside ``networks``.

    Process-wide by nature (aioice has one gathering function); call it at the start of the
    analysis worker. Calling it again replaces the previous restriction.
    """
    allowed = parse_networks(networks)

    def filtered(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in _ORIGINAL_GET_HOST_ADDRESSES(use_ipv4, use_ipv6) if _allowed(a, allowed)]

    aioice.ice.get_host_addresses = cast(Any, filtered)


def lift_host_address_restriction() -> None:
    aioice.ice.get_host_addresses = _ORIGINAL_GET_HOST_ADDRESSES


def sdp_candidates(sdp: str) -> list[tuple[str, str]]:
    """``(address, type)`` of every ``a=candidate`` line of an SDP."""
    return [(m.group(1), m.group(2)) for m in _CANDIDATE.finditer(sdp)]


def check_sdp_candidates(sdp: str, networks: Sequence[str], *, allow_relay: bool = False) -> None:
    """Raise ``IcePolicyError`` unless every candidate lies in ``networks`` (relays allowed if asked).

    Also refuses an SDP without any candidate: aiortc does not trickle, so such an answer
    could never connect and would only hide a gathering problem.
    """
    allowed = parse_networks(networks)
    candidates = sdp_candidates(sdp)
    if not candidates:
        raise IcePolicyError("no ICE candidate in the local description (no allowed address on this host?)")
    for address, kind in candidates:
        if kind == "relay" and allow_relay:
            continue
        if not _allowed(address, allowed):
            raise IcePolicyError(f"local ICE candidate {address} ({kind}) is outside {list(networks)}")


def rtc_configuration(
    ice_servers: Sequence[str] = (), *, username: str | None = None, credential: str | None = None
) -> RTCConfiguration:
    """An ``RTCConfiguration`` with exactly these STUN/TURN URLs (none by default, never aiortc's).

    Max-bundle: Janus bundles every m-line on one transport; with aiortc's default (balanced)
    policy an answerer first opens one ICE transport per media kind and closes the extra one
    while it may still be connecting, which sometimes kills the connection (seen here).
    """
    servers = [RTCIceServer(urls=url, username=username, credential=credential) for url in ice_servers]
    return RTCConfiguration(iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
