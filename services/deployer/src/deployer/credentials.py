"""Encryption of generated secrets at rest: AES-256-GCM, key kept outside the database."""

from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class CredentialCipher:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the credentials key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def from_key_file(cls, path: Path) -> CredentialCipher:
        return cls(base64.b64decode(path.read_text().strip()))

    def encrypt(self, resource_id: uuid.UUID, secret: str) -> tuple[bytes, bytes]:
        """Returns (nonce, ciphertext); the resource id is bound as associated data, so a
        ciphertext moved to another row does not decrypt."""
        nonce = os.urandom(12)
        return nonce, self._aead.encrypt(nonce, secret.encode(), resource_id.bytes)

    def decrypt(self, resource_id: uuid.UUID, nonce: bytes, ciphertext: bytes) -> str:
        return self._aead.decrypt(nonce, ciphertext, resource_id.bytes).decode()
