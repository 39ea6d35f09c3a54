import base64
import hashlib
import hmac
import uuid

import pytest
from cryptography.exceptions import InvalidTag

from deployer.scram import scram_sha256_verifier
from events.sealing import SecretCipher


def test_scram_verifier_matches_rfc7677_construction():
    salt = b"0123456789abcdef"
    verifier = scram_sha256_verifier("pencil", salt=salt, iterations=4096)
    method, rest = verifier.split("$", 1)
    assert method == "SCRAM-SHA-256"
    params, keys = rest.split("$")
    iterations, salt_b64 = params.split(":")
    assert int(iterations) == 4096 and base64.b64decode(salt_b64) == salt
    stored_key, server_key = (base64.b64decode(k) for k in keys.split(":"))
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 4096)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    assert stored_key == hashlib.sha256(client_key).digest()
    assert server_key == hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    assert "pencil" not in verifier


def test_credentials_round_trip_and_are_bound_to_their_resource():
    cipher = SecretCipher(bytes(range(32)))
    resource, other = uuid.uuid4(), uuid.uuid4()
    nonce, ciphertext = cipher.encrypt(resource, "s3cret-value")
    assert b"s3cret-value" not in ciphertext
    assert cipher.decrypt(resource, nonce, ciphertext) == "s3cret-value"
    with pytest.raises(InvalidTag):
        cipher.decrypt(other, nonce, ciphertext)


def test_identifiers_outside_the_expected_shape_are_refused():
    from deployer.drivers.postgres import ident, literal
    from events import PermanentError

    assert ident("orders_db_owner") == '"orders_db_owner"'
    for hostile in ['x"; DROP DATABASE postgres; --', "Upper", "a" * 64, "", "1abc"]:
        with pytest.raises(PermanentError):
            ident(hostile)
    assert literal("it's") == "'it''s'"
