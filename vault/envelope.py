"""AES-256-GCM encryption of values and wrapping of data keys (envelope encryption).

Each value is encrypted under a data key with a fresh random 96-bit nonce. The
associated data names the token's namespace, entity type and serial, so a ciphertext
copied into another row fails authentication. Data keys are stored wrapped (encrypted)
under the master key, with associated data naming the vault and the key version.
"""

import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_SIZE = 12
VALUE_AAD_LABEL = "tokengate value v1"
DATA_KEY_AAD_LABEL = "tokengate data key v1"
LOOKUP_KEY_AAD_LABEL = "tokengate lookup key v1"


class DecryptionError(Exception):
    """A ciphertext failed authentication: wrong key, wrong row or tampering."""


def value_aad(namespace: str, entity_type: str, serial: int) -> bytes:
    """Return the associated data that binds a value to its token."""
    return json.dumps([VALUE_AAD_LABEL, namespace, entity_type, serial]).encode()


def wrap_aad(label: str, vault_id: bytes, version: int) -> bytes:
    """Return the associated data that binds a wrapped key to its vault and version."""
    return json.dumps([label, vault_id.hex(), version]).encode()


def encrypt(cipher: AESGCM, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """Encrypt `plaintext` under a fresh random nonce; return (nonce, ciphertext)."""
    nonce = os.urandom(NONCE_SIZE)
    return nonce, cipher.encrypt(nonce, plaintext, aad)


def decrypt(cipher: AESGCM, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """Decrypt and authenticate; raise DecryptionError on any mismatch."""
    try:
        return cipher.decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise DecryptionError("ciphertext failed authentication") from None


def wrap_key(master_key: bytes, key: bytes, aad: bytes) -> bytes:
    """Encrypt `key` under the master key; returns nonce followed by ciphertext."""
    nonce, ciphertext = encrypt(AESGCM(master_key), key, aad)
    return nonce + ciphertext


def unwrap_key(master_key: bytes, wrapped: bytes, aad: bytes) -> bytes:
    """Decrypt a key wrapped by wrap_key; raise DecryptionError on mismatch."""
    return decrypt(AESGCM(master_key), wrapped[:NONCE_SIZE], wrapped[NONCE_SIZE:], aad)
