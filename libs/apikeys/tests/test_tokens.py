"""The access-token verifier, with keys made here and a JWKS served by a fake fetch."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from pydantic import ValidationError

from apikeys.jwks import UNKNOWN_KID_REFETCH_S, JwksCache
from apikeys.tokens import OAuthSettings, TokenVerifier

ISSUER = "https://idp.example.com/"
AUDIENCE = "provisioning-api"


class Provider:
    """An identity provider: its keys, its JWKS, and a count of how often it was fetched."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.keys = [
            RSAAlgorithm.to_jwk(self.rsa.public_key(), as_dict=True) | {"kid": "rsa-1"},
            ECAlgorithm.to_jwk(self.ec.public_key(), as_dict=True) | {"kid": "ec-1"},
        ]
        self.fetches = 0

    async def fetch(self) -> Mapping[str, Any]:
        self.fetches += 1
        return {"keys": self.keys}

    def token(self, kid: str = "rsa-1", key: Any = None, alg: str = "RS256", **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "ci-pipeline",
            "client_id": "ci-pipeline",
            "tenant": "default",
            "roles": ["requester"],
            "scope": "requests read",
            "iat": now,
            "exp": now + 300,
        } | claims
        payload = {name: value for name, value in payload.items() if value is not None}
        signing_key = key if key is not None else (self.ec if alg == "ES256" else self.rsa)
        return jwt.encode(payload, signing_key, algorithm=alg, headers={"kid": kid})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


SETTINGS = OAuthSettings(issuer=ISSUER, audience=AUDIENCE, jwks_url="https://idp.example.com/k")


@pytest.fixture(scope="module")
def provider() -> Provider:
    return Provider()


def verifier_for(provider: Provider, clock: Clock | None = None) -> TokenVerifier:
    keys = JwksCache(
        provider.fetch,
        algorithms=frozenset(SETTINGS.algorithms),
        cache_s=SETTINGS.jwks_cache_s,
        clock=clock or Clock(),
    )
    return TokenVerifier(SETTINGS, keys)


async def test_a_valid_token_names_the_client_its_tenant_roles_and_scopes(
    provider: Provider,
) -> None:
    caller = await verifier_for(provider).verify(provider.token())
    assert caller is not None
    assert (caller.name, caller.tenant, caller.roles) == ("ci-pipeline", "default", ("requester",))
    assert caller.scopes == ("requests", "read")
    assert caller.key_id == f"oauth:{ISSUER}:ci-pipeline"
    assert caller.rate_limit is None


async def test_a_token_never_carries_the_operators_platform_scope(provider: Provider) -> None:
    caller = await verifier_for(provider).verify(provider.token(scope="requests platform"))
    assert caller is not None and caller.scopes == ("requests",)


async def test_an_es256_token_is_accepted(provider: Provider) -> None:
    caller = await verifier_for(provider).verify(provider.token(kid="ec-1", alg="ES256"))
    assert caller is not None


async def test_without_client_id_the_subject_is_the_principal(provider: Provider) -> None:
    caller = await verifier_for(provider).verify(provider.token(client_id=None, sub="svc-7"))
    assert caller is not None and caller.name == "svc-7"


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 120},  # expired beyond the 30 s leeway
        {"exp": None},  # no expiry at all
        {"aud": "another-api"},
        {"iss": "https://evil.example.com/"},
        {"nbf": int(time.time()) + 600},
        {"iat": int(time.time()) + 600},
        {"tenant": None},
        {"tenant": ""},
        {"client_id": None, "sub": None},
    ],
    ids=str,
)
async def test_a_token_failing_a_check_is_refused(
    provider: Provider, claims: dict[str, Any]
) -> None:
    assert await verifier_for(provider).verify(provider.token(**claims)) is None


async def test_expiry_allows_the_leeway(provider: Provider) -> None:
    caller = await verifier_for(provider).verify(provider.token(exp=int(time.time()) - 10))
    assert caller is not None


async def test_an_unsigned_token_is_refused(provider: Provider) -> None:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "tenant": "default", "exp": now + 60}
    unsigned = jwt.encode(claims, "", algorithm="none", headers={"kid": "rsa-1"})
    assert await verifier_for(provider).verify(unsigned) is None


async def test_hs256_with_the_public_key_as_secret_is_refused(provider: Provider) -> None:
    """The classic confusion: the attacker signs with HMAC using the (public) RSA key."""
    public_pem = provider.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "tenant": "default", "exp": now + 60}
    # PyJWT refuses to encode with a PEM as HMAC secret, so sign by hand as an attacker would.
    algorithm = jwt.algorithms.HMACAlgorithm(jwt.algorithms.HMACAlgorithm.SHA256)
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT","kid":"rsa-1"}')
    body = jwt.utils.base64url_encode(json.dumps(claims).encode())
    signing_input = header + b"." + body
    forged = (
        signing_input + b"." + jwt.utils.base64url_encode(algorithm.sign(signing_input, public_pem))
    )
    assert await verifier_for(provider).verify(forged.decode()) is None


async def test_a_token_signed_by_another_key_is_refused(provider: Provider) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert await verifier_for(provider).verify(provider.token(key=stranger)) is None


async def test_garbage_is_refused(provider: Provider) -> None:
    assert await verifier_for(provider).verify("not.a.jwt") is None
    assert await verifier_for(provider).verify("garbage") is None


async def test_an_unknown_kid_refetches_at_most_every_30_s(provider: Provider) -> None:
    clock = Clock()
    verifier = verifier_for(provider, clock)
    before = provider.fetches
    assert await verifier.verify(provider.token()) is not None
    assert provider.fetches == before + 1
    for _ in range(5):
        assert await verifier.verify(provider.token(kid="rotated")) is None
    assert provider.fetches == before + 1  # fetched just now: not again
    clock.now += UNKNOWN_KID_REFETCH_S + 1
    assert await verifier.verify(provider.token(kid="rotated")) is None
    assert await verifier.verify(provider.token(kid="rotated")) is None
    assert provider.fetches == before + 2


async def test_a_rotated_key_is_found_by_refetching(provider: Provider) -> None:
    clock = Clock()
    verifier = verifier_for(provider, clock)
    assert await verifier.verify(provider.token()) is not None
    newcomer = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rotated = Provider()
    rotated.keys = [RSAAlgorithm.to_jwk(newcomer.public_key(), as_dict=True) | {"kid": "rsa-2"}]
    provider_keys = provider.keys
    provider.keys = provider_keys + rotated.keys
    try:
        clock.now += UNKNOWN_KID_REFETCH_S + 1
        assert await verifier.verify(provider.token(kid="rsa-2", key=newcomer)) is not None
    finally:
        provider.keys = provider_keys


async def test_the_jwks_is_cached_then_refreshed(provider: Provider) -> None:
    clock = Clock()
    verifier = verifier_for(provider, clock)
    before = provider.fetches
    for _ in range(3):
        assert await verifier.verify(provider.token()) is not None
    assert provider.fetches == before + 1
    clock.now += SETTINGS.jwks_cache_s + 1
    assert await verifier.verify(provider.token()) is not None
    assert provider.fetches == before + 2


async def test_unknown_roles_are_dropped_and_none_left_means_no_role(provider: Provider) -> None:
    verifier = verifier_for(provider)
    mixed = await verifier.verify(provider.token(roles=["approver", "superuser", "approver"]))
    assert mixed is not None and mixed.roles == ("approver",)
    none_left = await verifier.verify(provider.token(roles=["superuser"]))
    assert none_left is not None and none_left.roles == ()
    odd = await verifier.verify(provider.token(roles=[{"admin": True}, 7, "auditor"]))
    assert odd is not None and odd.roles == ("auditor",)
    not_a_list = await verifier.verify(provider.token(roles="admin"))
    assert not_a_list is not None and not_a_list.roles == ()


@pytest.mark.parametrize("algorithms", [["none"], ["HS256"], ["RS256", "HS512"], []])
def test_symmetric_or_no_algorithms_are_refused_in_settings(algorithms: list[str]) -> None:
    with pytest.raises(ValidationError):
        OAuthSettings(algorithms=algorithms)


def test_oauth_is_off_unless_issuer_audience_and_jwks_are_all_set() -> None:
    assert SETTINGS.enabled
    assert not OAuthSettings(issuer=ISSUER, audience=AUDIENCE).enabled
    assert not OAuthSettings().enabled


async def test_a_symmetric_key_in_the_jwks_is_never_used() -> None:
    secret = b"a-shared-secret-of-thirty-two-bytes!"
    provider = Provider()
    encoded = jwt.utils.base64url_encode(secret).decode()
    provider.keys = [{"kty": "oct", "kid": "hmac", "k": encoded}]
    forged = provider.token(kid="hmac", key=secret, alg="HS256")
    assert await verifier_for(provider).verify(forged) is None


async def test_a_token_without_kid_uses_the_only_key() -> None:
    provider = Provider()
    provider.keys = provider.keys[:1]
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "tenant": "t", "exp": now + 60}
    caller = await verifier_for(provider).verify(jwt.encode(claims, provider.rsa, "RS256"))
    assert caller is not None and caller.tenant == "t"
