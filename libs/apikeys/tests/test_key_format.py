import re
from datetime import UTC, datetime, timedelta

import pytest

from apikeys.roles import unknown_roles
from apikeys.secret import checksum, digest, hint, is_well_formed, new_secret
from apikeys.store import ApiKey, verify_key


def test_a_key_is_the_prefix_a_256_bit_body_and_a_checksum() -> None:
    secret = new_secret()
    assert re.fullmatch(r"prov_[0-9A-Za-z]{43}[0-9A-Za-z]{6}", secret)
    assert checksum(secret[:-6]) == secret[-6:]
    assert is_well_formed(secret)


def test_keys_do_not_repeat() -> None:
    assert len({new_secret() for _ in range(1000)}) == 1000


def test_one_mistyped_character_breaks_the_checksum() -> None:
    secret = new_secret()
    for position in range(len("prov_"), len(secret)):
        replacement = "a" if secret[position] != "a" else "b"
        mistyped = secret[:position] + replacement + secret[position + 1 :]
        assert not is_well_formed(mistyped), position


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "prov_",
        "prov_wrong",
        "ghp_" + "a" * 45,
        "PROV_" + "a" * 49,
        "prov_" + "a" * 48,  # one short
        "prov_" + "a" * 50,  # one long
        "prov_" + "-" * 43 + "aaaaaa",  # outside the alphabet
        "prov_" + "é" * 49,
    ],
)
def test_malformed_keys_are_refused(presented: str) -> None:
    assert not is_well_formed(presented)


def test_only_the_hash_and_a_hint_are_kept() -> None:
    secret = new_secret()
    assert digest(secret) == digest(secret)
    assert len(digest(secret)) == 64 and secret not in digest(secret)
    assert hint(secret) == f"prov_…{secret[-4:]}"


class NoDatabase:
    """A session that fails the test if a query is attempted."""

    async def scalar(self, *_args: object, **_kwargs: object) -> None:
        raise AssertionError("a malformed key must be refused before any query")


async def test_a_malformed_key_costs_no_query() -> None:
    secret = new_secret()
    mistyped = secret[:-1] + ("a" if secret[-1] != "a" else "b")
    assert await verify_key(NoDatabase(), mistyped) is None  # type: ignore[arg-type]
    assert await verify_key(NoDatabase(), "Bearer nonsense") is None  # type: ignore[arg-type]


def test_status_of_a_key() -> None:
    now = datetime.now(UTC)
    key = ApiKey(expires_at=None, revoked_at=None)
    assert key.status_at(now) == "active"
    key.expires_at = now
    assert key.status_at(now) == "expired"
    key.revoked_at = now - timedelta(days=1)
    assert key.status_at(now) == "revoked"


def test_only_the_four_roles_exist() -> None:
    assert unknown_roles(["requester", "approver", "admin", "auditor"]) == []
    assert unknown_roles(["admin", "root"]) == ["root"]
