"""The shape of an API key: `prov_`, a 256-bit random body, and a checksum of both.

As GitHub's tokens: the prefix makes a leaked key recognisable to secret scanners, and the
CRC32 checksum lets a mistyped or made-up key be refused without a database lookup. The
checksum proves nothing about authenticity; only the stored SHA-256 does.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import zlib

KEY_PREFIX = "prov_"
ALPHABET = string.digits + string.ascii_letters
# 62**43 > 2**256: at least 256 bits of randomness.
BODY_LENGTH = 43
# 62**6 > 2**32: room for any CRC32.
CHECKSUM_LENGTH = 6
HINT_LENGTH = 4
_SHAPE = re.compile(
    rf"{KEY_PREFIX}[0-9A-Za-z]{{{BODY_LENGTH}}}[0-9A-Za-z]{{{CHECKSUM_LENGTH}}}", re.ASCII
)


def new_secret() -> str:
    body = KEY_PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(BODY_LENGTH))
    return body + checksum(body)


def checksum(body: str) -> str:
    value = zlib.crc32(body.encode())
    digits = []
    for _ in range(CHECKSUM_LENGTH):
        value, digit = divmod(value, len(ALPHABET))
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


def is_well_formed(presented: str) -> bool:
    """Prefix, length, alphabet and checksum: all a key must pass before it costs a query."""
    if not _SHAPE.fullmatch(presented):
        return False
    body, check = presented[:-CHECKSUM_LENGTH], presented[-CHECKSUM_LENGTH:]
    return secrets.compare_digest(checksum(body), check)


def digest(secret: str) -> str:
    """SHA-256 is enough: a 256-bit random secret cannot be guessed, only stolen, and a stolen
    digest does not give the key back."""
    return hashlib.sha256(secret.encode()).hexdigest()


def hint(secret: str) -> str:
    """What may be shown to tell keys apart: the prefix and the last characters (checksum)."""
    return f"{KEY_PREFIX}…{secret[-HINT_LENGTH:]}"
