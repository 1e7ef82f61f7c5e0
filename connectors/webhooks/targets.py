"""Which webhook endpoints fusewatch may call: a guard against server-side request forgery (SSRF).

An alert webhook is configured by URL, so a careless or hostile URL could make fusewatch call services inside
the plant network. :func:`resolve_target` accepts ``http``/``https`` URLs only, resolves the host once and
refuses it when **any** address it resolves to is loopback, private (RFC 1918, IPv6 unique-local),
link-local (169.254/16 — cloud metadata — and fe80::/10), carrier-grade NAT (100.64/10), multicast, reserved
or unspecified, including IPv4 addresses mapped or embedded in IPv6. The caller then connects to the returned
address (pinned: a second DNS answer cannot rebind it) and follows no redirects.
``allow_private=True`` lifts the block, e.g. for a receiver on the same host.

>>> resolve_target("https://10.0.0.5/hooks/fusewatch")
Traceback (most recent call last):
...
fusewatch.core.errors.BlockedTargetError: https://10.0.0.5/hooks/fusewatch: 10.0.0.5 is a private address
>>> resolve_target("http://127.0.0.1:8080/hook", allow_private=True).port
8080
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from fusewatch.core.errors import BlockedTargetError

_CGNAT = ipaddress.ip_network("100.64.0.0/10")


@dataclass(frozen=True)
class Target:
    """A checked endpoint: scheme, host (for TLS and the Host header), port, path and the pinned address."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def blocked_reason(address: str) -> str | None:
    """Why ``address`` may not be called (``None`` when it is a public unicast address).

    >>> [blocked_reason(a) for a in ("8.8.8.8", "10.1.2.3", "::ffff:127.0.0.1", "100.64.0.1", "169.254.169.254")]
    [None, 'private', 'loopback', 'carrier-grade NAT', 'link-local']
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            return blocked_reason(str(embedded))
    checks = (
        ("unspecified", ip.is_unspecified), ("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("carrier-grade NAT", isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT),
        ("private", ip.is_private), ("reserved", ip.is_reserved or not ip.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def resolve_target(url: str, allow_private: bool = False) -> Target:
    """Check ``url`` and pin the address to connect to; :class:`BlockedTargetError` names the problem."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise BlockedTargetError(f"{url}: only http and https webhooks are allowed")
    if not parts.hostname:
        raise BlockedTargetError(f"{url}: no host")
    if parts.username or parts.password:
        raise BlockedTargetError(f"{url}: credentials belong in the signing secret, not in the URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise BlockedTargetError(f"{url}: invalid port") from None
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise BlockedTargetError(f"{url}: {parts.hostname} does not resolve ({exc.strerror})") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allow_private:
        for address in addresses:
            reason = blocked_reason(address)
            if reason is not None:
                raise BlockedTargetError(f"{url}: {address} is a {reason} address")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port, path, addresses[0])
