"""Calls to servers named by someone else (webhook subscribers, vendor endpoints): one guard.

A URL's host is resolved once, every address it resolves to is checked against the policy,
and the connection goes to exactly an address that was checked, so a name cannot answer a
public address to the check and a private one to the connection (DNS rebinding). TLS and the
Host header still use the URL's hostname. Redirects are not followed, and failures are told
apart only by a generic class (`error_class`): the raw text of a connect error would tell a
caller which internal ports are open.

The policy refuses every address that is not publicly routable unless the deployment's
allow-list (`OUTBOUND_ALLOW_LIST`: CIDRs and host:port entries, comma-separated) names it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import httpcore
import httpx

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

REFUSED_ADDRESS = "refused_address"
TIMEOUT = "timeout"
TLS_ERROR = "tls_error"
CONNECTION_FAILED = "connection_failed"


def is_public(address: IPAddress) -> bool:
    """Publicly routable unicast. `is_global` alone is not enough: it holds for multicast,
    site-local IPv6 and addresses that embed a private IPv4 one (6to4)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return is_public(embedded)
        if address.is_site_local:
            return False
    return address.is_global and not (
        address.is_multicast
        or address.is_reserved
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_private
    )


@dataclass(frozen=True)
class AllowList:
    """Addresses the deployment allows although they are not public: whole networks
    (`10.20.0.0/16`), or one endpoint (`127.0.0.1:8090`, `[::1]:8090`, `receiver:8090`, a name
    matching the URL's host as written)."""

    networks: tuple[IPNetwork, ...] = ()
    endpoints: frozenset[tuple[str, int]] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, text: str | Iterable[str]) -> AllowList:
        entries = text.split(",") if isinstance(text, str) else list(text)
        networks: list[IPNetwork] = []
        endpoints: set[tuple[str, int]] = set()
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            if "/" in entry:
                networks.append(ipaddress.ip_network(entry, strict=True))
                continue
            host, separator, port = entry.rpartition(":")
            if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"allow-list entry {entry!r} is neither a CIDR nor host:port")
            endpoints.add((_normal_host(host), int(port)))
        return cls(tuple(networks), frozenset(endpoints))

    def names(self, host: str, port: int) -> bool:
        return (_normal_host(host), port) in self.endpoints

    def admits(self, address: IPAddress, port: int, *, host: str) -> bool:
        """May `address` be connected to on `port`, for a URL naming `host`?"""
        return (
            is_public(address)
            or any(address in network for network in self.networks)
            or self.names(host, port)
            or self.names(str(address), port)
        )


def _normal_host(host: str) -> str:
    host = host.strip("[]").lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


class RefusedAddress(httpx.ConnectError):
    """The host resolves to an address the policy refuses, or to none: nothing was sent."""


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> list[IPAddress]: ...


class SystemResolver:
    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        # A scope (`fe80::1%eth0`) names an interface, not an address.
        return list(dict.fromkeys(_address(str(info[4][0])) for info in found))


def _address(text: str) -> IPAddress:
    return ipaddress.ip_address(text.split("%")[0])


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to checked addresses of the host."""

    def __init__(self, allow_list: AllowList, resolver: Resolver) -> None:
        self._allow_list = allow_list
        self._resolver = resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self.vetted(host, port)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                last = error
        assert last is not None
        raise last

    async def vetted(self, host: str, port: int) -> Sequence[IPAddress]:
        literal = literal_address(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                addresses = await self._resolver.resolve(host, port)
            except OSError as error:
                logger.info("outbound call to %s:%s: not resolved (%s)", host, port, error)
                raise RefusedAddress(REFUSED_ADDRESS) from None
        refused = [a for a in addresses if not self._allow_list.admits(a, port, host=host)]
        if refused or not addresses:
            # Any refused answer refuses the name: a mixed answer is how rebinding starts.
            logger.info("outbound call to %s:%s refused (resolves to %s)", host, port, refused)
            raise RefusedAddress(REFUSED_ADDRESS)
        return addresses

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedAddress(REFUSED_ADDRESS)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, allow_list: AllowList, resolver: Resolver | None = None) -> None:
        super().__init__(trust_env=False)
        # httpx takes no network backend of its own: its pool is replaced by one that has it.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=GuardedBackend(allow_list, resolver or SystemResolver()),
        )


def guarded_client(
    allow_list: AllowList,
    *,
    timeout_s: float,
    base_url: str = "",
    resolver: Resolver | None = None,
) -> httpx.AsyncClient:
    """A client for servers someone else named: checked addresses only, no redirects, and
    no proxy taken from the environment (a proxy would resolve the name again)."""
    return httpx.AsyncClient(
        transport=GuardedTransport(allow_list, resolver),
        base_url=base_url,
        timeout=timeout_s,
        follow_redirects=False,
        trust_env=False,
    )


def error_class(error: BaseException) -> str:
    """What may be told about a failed call: its kind, never its text."""
    if isinstance(error, RefusedAddress):
        return REFUSED_ADDRESS
    if isinstance(error, TimeoutError | httpx.TimeoutException):
        return TIMEOUT
    if any(isinstance(cause, ssl.SSLError) for cause in _causes(error)):
        return TLS_ERROR
    return CONNECTION_FAILED


def status_class(status_code: int) -> str:
    return f"http_{status_code}"


def _causes(error: BaseException) -> Iterable[BaseException]:
    seen: BaseException | None = error
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__
