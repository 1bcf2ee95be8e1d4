"""Who may talk to the app: a Host check against DNS rebinding, an origin check against CSRF.

The app has no login: whoever reaches the port can use it. Two browser attacks reach a server
bound to loopback all the same. A page on any site can *send* a cross-site form or ``text/plain``
POST (no preflight), so every state-changing request must prove it comes from the app's own page:
an ``Origin`` header naming the app's own origin, or the ``X-Cardioseg`` header that only the
page's script sends (a foreign page cannot add it without a CORS preflight, which the app never
grants). And a site whose DNS name is rebound to 127.0.0.1 can *read* the answers, but its
requests carry its own name in ``Host``: only the names the server is reachable under pass.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from cardioseg.config import ServeConfig

CUSTOM_HEADER = "x-cardioseg"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
DEFAULT_PORTS = {"http": 80, "https": 443}


class HostPolicy:
    """The host names the app answers under: loopback, the bound address and, bound to every
    interface, the machine's own names and any IP address (a literal address cannot be rebound)."""

    def __init__(self, serve: ServeConfig) -> None:
        bound = serve.host.strip("[]").lower()
        self.wildcard = bound in WILDCARD_HOSTS
        self.names = set(LOOPBACK_NAMES) | ({bound} - WILDCARD_HOSTS)
        if self.wildcard:
            self.names |= {socket.gethostname().lower(), socket.getfqdn().lower()}

    def allows(self, host: str) -> bool:
        if host in self.names:
            return True
        return self.wildcard and _is_ip(host)

    def problem(self, host_header: str | None) -> str | None:
        """Why a request with this ``Host`` header is refused, or None when it may pass."""
        if not host_header:
            return "the request has no Host header"
        host = split_host(host_header)[0]
        if host is None or not self.allows(host):
            where = ", ".join(sorted(self.names)) + (" or an IP address" if self.wildcard else "")
            return (f"the app does not answer under the host name {host_header[:100]!r} (a guard against "
                    f"DNS rebinding): open it under {where}")
        return None


def split_host(value: str) -> tuple[str | None, int | None]:
    """(lower-case name, port) of a ``Host`` header value or URL netloc; (None, None) when malformed."""
    value = value.strip().lower()
    if any(c in value for c in "@/\\?#"):  # userinfo or a path: not a host name
        return None, None
    try:
        parsed = urlsplit(f"//{value}")
        return (parsed.hostname or None), parsed.port
    except ValueError:
        return None, None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _same_origin(origin: str, host_header: str, scheme: str) -> bool:
    """Whether an ``Origin`` header names the origin the request was sent to (default ports filled in)."""
    try:
        parts = urlsplit(origin.strip().lower())
        origin_port = parts.port
    except ValueError:
        return False
    if parts.scheme != scheme or scheme not in DEFAULT_PORTS or parts.hostname is None:
        return False  # includes "null", sent by sandboxed frames and some redirects
    host, port = split_host(host_header)
    default = DEFAULT_PORTS[scheme]
    return (parts.hostname, origin_port or default) == (host, port or default)


def csrf_problem(method: str, headers: dict[str, str], scheme: str) -> str | None:
    """Why a state-changing request is refused as possibly cross-site, or None when it may pass."""
    if method.upper() not in STATE_CHANGING:
        return None
    origin = headers.get("origin")
    if origin is not None:
        if _same_origin(origin, headers.get("host", ""), scheme):
            return None
        return f"cross-site request refused: Origin {origin[:100]!r} is not this app"
    if headers.get(CUSTOM_HEADER) == "1":
        return None
    return "request refused: send it from the app's page (no Origin header and no X-Cardioseg: 1 header)"
