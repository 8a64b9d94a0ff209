"""Where a hook may send: public addresses only, judged on what the host name resolves to.

A hook's URL is chosen by a client, and the service POSTs to it from inside its network: a URL naming the
cloud's metadata service, a database on the private network or the service itself would turn webhooks
into a way in (server-side request forgery). Judging the URL's text is not enough (`127.1`, `0x7f000001`,
`2130706433` and a DNS name pointing at 10.0.0.5 all reach private hosts), so the host is resolved with
`socket.getaddrinfo` and every address it gives must be global (`ipaddress`): not loopback, private,
link-local (169.254.169.254, the metadata service of AWS, GCP and Azure), shared (100.64/10), multicast,
reserved or unspecified, nor an IPv4 address of those inside IPv6. It is checked when a hook is created
and again before every delivery, since DNS can change in between. `LIFELONG_WEBHOOK_ALLOW_PRIVATE` turns
the check off, for receivers on the same machine or network (the tests, the walk-throughs).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Metadata services reachable at addresses outside the link-local ranges (Alibaba, AWS over IPv6).
METADATA = {ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("fd00:ec2::254")}


class TargetRefused(ValueError):
    """The URL's host resolves to an address a hook may not send to, or does not resolve."""


def check_target(url: str, *, allow_private: bool) -> None:
    """Raise TargetRefused unless every address `url`'s host resolves to is a public one."""
    if allow_private:
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    for address in resolve(host, parts.port or (443 if parts.scheme == "https" else 80)):
        kind = address_kind(address)
        if kind is not None:
            raise TargetRefused(f"host {host!r} resolves to {address}, {kind}: hooks send to public addresses "
                                "only (LIFELONG_WEBHOOK_ALLOW_PRIVATE=true allows private ones)")


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, as the system resolver (the one httpx connects with) gives them."""
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as error:
        raise TargetRefused(f"host {host!r} does not resolve: {error}") from error
    # A scope (fe80::1%eth0) is not part of the address.
    return [ipaddress.ip_address(str(answer[4][0]).split("%")[0]) for answer in answers]


def address_kind(address: IPAddress) -> str | None:
    """What makes `address` one a hook may not reach ("a loopback address", …), or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    checks = [("a cloud metadata address", address in METADATA), ("a loopback address", address.is_loopback),
              ("a link-local address (as the cloud metadata service)", address.is_link_local),
              ("an unspecified address", address.is_unspecified), ("a multicast address", address.is_multicast),
              ("a private address", address.is_private), ("a reserved address", address.is_reserved),
              ("not a public address", not address.is_global)]
    return next((kind for kind, hit in checks if hit), None)
