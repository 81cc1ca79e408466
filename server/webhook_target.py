"""Where a webhook may go: public addresses only, unless the operator allows private ones.

A webhook URL comes from a user, and the server POSTs to it from inside the deployment,
where loopback, cluster and cloud metadata addresses (169.254.169.254) answer. So by
default a URL must lead to a global address: an IP literal is checked when the job is
submitted, a host name each time it is resolved for an attempt. The attempt then connects
to exactly the address that was checked (the URL's host is kept in `Host` and TLS SNI), so
a name that resolves to a public address once and to an internal one a moment later
(DNS rebinding) cannot slip through. `OCTAVIA_WEBHOOK_ALLOW_PRIVATE_NETWORKS` lifts the
rule for receivers on the same machine or network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any

import httpx

ALLOW_SETTING = "OCTAVIA_WEBHOOK_ALLOW_PRIVATE_NETWORKS"


class NotPublic(Exception):
    """The URL leads to a loopback, private, link-local or otherwise non-public address."""


@dataclass(frozen=True)
class Target:
    """What to send the request to: `url` names the checked address itself."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)


def is_public(address: str) -> bool:
    """True for a globally routable unicast address (IPv4-mapped IPv6 judged as IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def literal_address(host: str) -> str | None:
    """The host when it is an IP address (brackets removed), else None."""
    try:
        return str(ipaddress.ip_address(host.strip("[]").split("%", 1)[0]))
    except ValueError:
        return None


def check_literal(url: str) -> None:
    """Refuse a URL whose host is a non-public IP address (names are checked when sent)."""
    host = httpx.URL(url).host
    address = literal_address(host)
    if address is not None and not is_public(address):
        raise NotPublic(f"{host} is not a public address")


async def pin(url: str) -> Target:
    """Resolve the URL's host and check every address it has; the request then goes to
    the first of them. Raises NotPublic, or OSError when the name does not resolve."""
    parsed = httpx.URL(url)
    host = parsed.host
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    if not addresses:
        raise OSError(f"{host} has no address")
    for address in addresses:
        if not is_public(address):
            raise NotPublic(f"{host} resolves to {address}, which is not a public address")
    extensions = {"sni_hostname": host} if parsed.scheme == "https" else {}
    return Target(url=str(parsed.copy_with(host=addresses[0])),
                  headers={"Host": parsed.netloc.decode("ascii")}, extensions=extensions)
