"""The outbound-call guard: which addresses may be called, and that the call goes to the one
checked, against a real local HTTP server and a fake resolver."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from events.outbound import (
    AllowList,
    IPAddress,
    RefusedAddress,
    error_class,
    guarded_client,
    is_public,
    status_class,
)

REFUSED = [
    "127.0.0.1",  # loopback
    "127.8.9.10",
    "10.1.2.3",  # private
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # link-local: cloud metadata
    "100.64.0.1",  # CGNAT
    "0.0.0.0",  # unspecified
    "0.1.2.3",  # "this network"
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "240.0.0.1",  # reserved
    "255.255.255.255",
    "192.0.2.1",  # documentation
    "198.18.0.1",  # benchmarking
    "::1",
    "::",
    "fe80::1",
    "fc00::1",  # unique local
    "fd12:3456::1",
    "fec0::1",  # site-local (deprecated)
    "ff02::1",  # multicast
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a00:1::",  # 6to4 of 10.0.0.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "::7f00:1",  # IPv4-compatible
    "2001:db8::1",  # documentation
    "2001::1",  # Teredo
    "100::1",  # discard
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700::1111", "2a00:1450:4001::200e"]


@pytest.mark.parametrize("text", REFUSED)
def test_every_address_that_is_not_public_is_refused(text: str) -> None:
    assert not is_public(ipaddress.ip_address(text))
    assert not AllowList().admits(ipaddress.ip_address(text), 443, host=text)


@pytest.mark.parametrize("text", PUBLIC)
def test_public_ipv4_and_ipv6_addresses_are_admitted(text: str) -> None:
    assert is_public(ipaddress.ip_address(text))
    assert AllowList().admits(ipaddress.ip_address(text), 443, host="example.com")


def test_an_ipv4_mapped_address_is_judged_by_its_ipv4_address() -> None:
    assert is_public(ipaddress.ip_address("::ffff:8.8.8.8"))
    assert not is_public(ipaddress.ip_address("::ffff:192.168.0.1"))


def test_an_allow_listed_network_admits_its_addresses_on_every_port() -> None:
    allowed = AllowList.parse("127.0.0.1/32, fd00::/8")
    assert allowed.admits(ipaddress.ip_address("127.0.0.1"), 9000, host="127.0.0.1")
    assert allowed.admits(ipaddress.ip_address("fd00::5"), 80, host="svc.internal")
    assert not allowed.admits(ipaddress.ip_address("127.0.0.2"), 9000, host="127.0.0.2")
    assert not allowed.admits(ipaddress.ip_address("10.0.0.1"), 9000, host="10.0.0.1")


def test_an_allow_listed_endpoint_admits_that_port_only() -> None:
    allowed = AllowList.parse("127.0.0.1:8090,[::1]:8090,Receiver.Local:9000")
    loopback = ipaddress.ip_address("127.0.0.1")
    assert allowed.admits(loopback, 8090, host="127.0.0.1")
    assert not allowed.admits(loopback, 8091, host="127.0.0.1")
    assert allowed.admits(ipaddress.ip_address("::1"), 8090, host="::1")
    # A name entry admits whatever that name resolves to, on its port.
    assert allowed.admits(ipaddress.ip_address("10.9.8.7"), 9000, host="receiver.local")
    assert not allowed.admits(ipaddress.ip_address("10.9.8.7"), 9000, host="other.local")


@pytest.mark.parametrize("entry", ["127.0.0.1", "10.0.0.1/8", "host:", ":80", "host:0", "h:x"])
def test_a_mistyped_allow_list_entry_is_an_error(entry: str) -> None:
    with pytest.raises(ValueError):
        AllowList.parse(entry)


@dataclass
class Answer:
    status: int = 200
    location: str | None = None


@dataclass
class LocalServer:
    """A minimal HTTP server on 127.0.0.1 recording each request's line and Host header."""

    answers: dict[str, Answer] = field(default_factory=dict)
    received: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        line, *headers = head.split("\r\n")
        host = next(h.split(":", 1)[1].strip() for h in headers if h.lower().startswith("host:"))
        path = line.split(" ")[1]
        self.received.append((path, host))
        answer = self.answers.get(path, Answer())
        location = f"location: {answer.location}\r\n" if answer.location else ""
        writer.write(
            f"HTTP/1.1 {answer.status} X\r\n{location}content-length: 0\r\n"
            "connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        writer.close()


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    local = LocalServer()
    listening = await asyncio.start_server(local.handle, "127.0.0.1", 0)
    local.port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield local


@dataclass
class RebindingResolver:
    """A name that answers one address, then another to every later question."""

    first: str
    then: str
    questions: int = 0

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.questions += 1
        return [ipaddress.ip_address(self.first if self.questions == 1 else self.then)]


@dataclass
class FixedResolver:
    answers: dict[str, list[str]]

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        if host not in self.answers:
            raise OSError(-2, "Name or service not known")
        return [ipaddress.ip_address(a) for a in self.answers[host]]


async def test_a_rebinding_name_is_connected_to_only_at_the_address_checked(
    server: LocalServer,
) -> None:
    # 127.0.0.1 plays the public address; 127.0.0.2 (refused, and not listening) the private.
    resolver = RebindingResolver(first="127.0.0.1", then="127.0.0.2")
    allowed = AllowList.parse("127.0.0.1/32")
    async with guarded_client(allowed, timeout_s=2.0, resolver=resolver) as client:
        response = await client.get(f"http://hooks.example:{server.port}/in")
    assert response.status_code == 200
    assert server.received == [("/in", f"hooks.example:{server.port}")]
    assert resolver.questions == 1


async def test_a_name_that_rebinds_to_a_refused_address_for_a_new_connection_is_refused(
    server: LocalServer,
) -> None:
    resolver = RebindingResolver(first="127.0.0.1", then="169.254.169.254")
    allowed = AllowList.parse("127.0.0.1/32")
    async with guarded_client(allowed, timeout_s=2.0, resolver=resolver) as client:
        assert (await client.get(f"http://hooks.example:{server.port}/a")).status_code == 200
        # The server closed the connection: the next request resolves anew, and is checked.
        with pytest.raises(RefusedAddress) as refused:
            await client.get(f"http://hooks.example:{server.port}/b")
    assert error_class(refused.value) == "refused_address"
    assert server.received == [("/a", f"hooks.example:{server.port}")]


async def test_a_name_resolving_to_any_refused_address_is_not_called(
    server: LocalServer,
) -> None:
    resolver = FixedResolver({"mixed.example": ["127.0.0.1", "10.0.0.1"]})
    async with guarded_client(
        AllowList.parse("127.0.0.1/32"), timeout_s=2.0, resolver=resolver
    ) as client:
        with pytest.raises(RefusedAddress):
            await client.get(f"http://mixed.example:{server.port}/x")
        with pytest.raises(RefusedAddress):
            await client.get(f"http://127.0.0.2:{server.port}/x")  # a literal, not allowed
    assert server.received == []


async def test_an_unresolvable_host_is_refused_with_a_generic_class(server: LocalServer) -> None:
    async with guarded_client(
        AllowList.parse("127.0.0.1/32"), timeout_s=2.0, resolver=FixedResolver({})
    ) as client:
        with pytest.raises(httpx.HTTPError) as raised:
            await client.get(f"http://nowhere.invalid:{server.port}/x")
    assert error_class(raised.value) == "refused_address"
    assert "not known" not in str(raised.value)
    assert server.received == []


async def test_the_system_resolver_refuses_a_name_that_does_not_exist() -> None:
    async with guarded_client(AllowList(), timeout_s=5.0) as client:
        with pytest.raises(RefusedAddress):
            await client.get("http://no-such-host.invalid/")


async def test_redirects_are_not_followed(server: LocalServer) -> None:
    server.answers["/moved"] = Answer(302, location=f"http://127.0.0.1:{server.port}/target")
    async with guarded_client(AllowList.parse("127.0.0.1/32"), timeout_s=2.0) as client:
        response = await client.post(f"http://127.0.0.1:{server.port}/moved", content=b"{}")
    assert response.status_code == 302 and status_class(response.status_code) == "http_302"
    assert [path for path, _ in server.received] == ["/moved"]


async def test_a_closed_port_is_a_connection_failure_without_its_details(
    server: LocalServer,
) -> None:
    listening = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    listening.close()
    await listening.wait_closed()
    async with guarded_client(AllowList.parse("127.0.0.1/32"), timeout_s=2.0) as client:
        with pytest.raises(httpx.HTTPError) as raised:
            await client.get(f"http://127.0.0.1:{port}/")
    assert error_class(raised.value) == "connection_failed"
    assert error_class(TimeoutError()) == "timeout"
    assert error_class(httpx.ReadTimeout("slow")) == "timeout"
