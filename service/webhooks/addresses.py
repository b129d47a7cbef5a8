"""Where a webhook may go: public addresses only, checked when it is added and on each delivery.

A webhook's URL is chosen by whoever administers endpoints, and the service POSTs to it from
inside your network: without this rule an endpoint could reach a database's admin port or a
cloud's metadata service. A name is resolved at each delivery, every address it resolves to is
checked, and the request goes to the address checked (its name still in the Host header and
TLS's server name), so a name that resolves to a public address at `add` and to a private one
later (DNS rebinding) is refused then too. APICTL_WEBHOOK_ALLOW_PRIVATE=true lifts the rule
(tests, and endpoints inside your own network on purpose).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from service.errors import ValidationFailed

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(Exception):
    """The URL may not be reached: one line saying why."""


@dataclass(frozen=True)
class Target:
    """Where to connect for a URL: the checked address, and the name it was found by."""

    url: str  # the URL with its host replaced by the address
    host_header: str
    server_name: str | None  # for TLS: the URL's host name (None: the URL named an address)


def why_not_public(address: Address) -> str | None:
    """What kind of non-public address this is, or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind in ("loopback", "link_local", "multicast", "unspecified", "private", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    if not address.is_global:
        return "non-public"
    return None


async def resolve(host: str, port: int) -> list[Address]:
    """Every address `host` resolves to (an address names itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"cannot resolve {host}: {exc}") from None
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


async def target(url: str, allow_private: bool) -> Target:
    """Where to send a request for `url`; Refused if a non-public address is among its host's."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await resolve(host, port)
    if not allow_private:
        for address in addresses:
            kind = why_not_public(address)
            if kind is not None:
                raise Refused(
                    f"{host} resolves to {address}, a {kind} address"
                    " (APICTL_WEBHOOK_ALLOW_PRIVATE=true allows it)"
                )
    chosen = addresses[0]
    shown = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    netloc = f"{shown}:{parts.port}" if parts.port else shown
    named = host != str(chosen)
    return Target(
        parts._replace(netloc=netloc).geturl(),
        parts.netloc,
        host if named and parts.scheme == "https" else None,
    )


async def check(url: str, allow_private: bool) -> None:
    """At `add`: ValidationFailed (422) if the URL's host is not public, or cannot be found."""
    try:
        await target(url, allow_private)
    except Refused as exc:
        raise ValidationFailed(f"url: {exc}") from None
