"""Pure rules of webhook delivery: when to try again, and which URLs may be called."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def retry_delay_s(attempts: int, *, base_s: float, cap_s: float, jitter: float) -> float:
    """How long to wait after the `attempts`-th failed attempt: exponential, capped, and
    jittered (`jitter` in [0, 1) takes up to half of it away) so that a subscriber coming back
    is not hit by every waiting delivery at the same moment."""
    ceiling = min(cap_s, base_s * 2.0 ** max(attempts - 1, 0))
    return ceiling * (1.0 - jitter / 2)


def gives_up(attempts: int, *, max_attempts: int) -> bool:
    return attempts >= max_attempts


def url_problem(url: str, *, allow_private: bool) -> str | None:
    """Why `url` may not be a webhook endpoint, None if it may. Unless private networks are
    allowed (development), a literal address must be public; names are checked again against
    what they resolve to at send time."""
    if any(character.isspace() or not character.isprintable() for character in url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "must be an http or https URL"
    if not parts.hostname:
        return "must name a host"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials"
    if port == 0:
        return "must not use port 0"
    if allow_private:
        return None
    if parts.hostname.lower() in ("localhost", "localhost.localdomain"):
        return "must not point at this host"
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return None
    return None if is_public(address) else "must not point at a private or reserved address"


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_public(address.ipv4_mapped)
    return address.is_global and not address.is_multicast
