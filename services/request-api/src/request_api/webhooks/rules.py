"""Pure rules of webhook delivery: when to try again, and which URLs may be called."""

from __future__ import annotations

from urllib.parse import urlsplit

from events.outbound import AllowList, literal_address


def retry_delay_s(attempts: int, *, base_s: float, cap_s: float, jitter: float) -> float:
    """How long to wait after the `attempts`-th failed attempt: exponential, capped, and
    jittered (`jitter` in [0, 1) takes up to half of it away) so that a subscriber coming back
    is not hit by every waiting delivery at the same moment."""
    ceiling = min(cap_s, base_s * 2.0 ** max(attempts - 1, 0))
    return ceiling * (1.0 - jitter / 2)


def gives_up(attempts: int, *, max_attempts: int) -> bool:
    return attempts >= max_attempts


def url_problem(url: str, *, allow_list: AllowList) -> str | None:
    """Why `url` may not be a webhook endpoint, None if it may. A literal address must be
    public or allow-listed; a name is checked against what it resolves to at each send."""
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
    host = parts.hostname
    port = port or (443 if parts.scheme == "https" else 80)
    if host in ("localhost", "localhost.localdomain") and not allow_list.names(host, port):
        return "must not point at this host"
    address = literal_address(host)
    if address is None or allow_list.admits(address, port, host=host):
        return None
    return "must not point at a private or reserved address"
