"""Secrets kept at rest (generated passwords, webhook signing secrets): AES-256-GCM under a key
kept outside the database, each bound to the row it belongs to."""

from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def read_key(path: Path) -> bytes:
    """A 32-byte key kept in a file as base64 (the cipher's, the audit chain's)."""
    key = base64.b64decode(path.read_text().strip(), validate=True)
    if len(key) != 32:
        raise ValueError(f"{path} does not hold a 32-byte key")
    return key


class SecretCipher:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def from_key_file(cls, path: Path) -> SecretCipher:
        return cls(read_key(path))

    def encrypt(self, owner_id: uuid.UUID, secret: str) -> tuple[bytes, bytes]:
        """Returns (nonce, ciphertext); the owner's id (a resource, a subscription) is bound
        as associated data, so a ciphertext moved to another row does not decrypt."""
        nonce = os.urandom(12)
        return nonce, self._aead.encrypt(nonce, secret.encode(), owner_id.bytes)

    def decrypt(self, owner_id: uuid.UUID, nonce: bytes, ciphertext: bytes) -> str:
        return self._aead.decrypt(nonce, ciphertext, owner_id.bytes).decode()
