"""The master key file and the keys derived from the master key.

The key file contains 32 random bytes as one line of url-safe base64. It must be
readable by its owner only (mode 0600), and it lives outside the database so that a
copy of the database alone reveals nothing.
"""

import base64
import binascii
import hashlib
import hmac
import logging
import os
import stat
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault.errors import KeyFileError

logger = logging.getLogger(__name__)

KEY_SIZE = 32
KEY_FILE_MODE = 0o600
AUDIT_KEY_INFO = b"tokengate audit chain v1"
KEY_CHECK_INFO = b"tokengate key check v1"
KEY_CHECK_MESSAGE = b"tokengate master key check"


def init_command(vault_path: Path, key_file: Path) -> str:
    """Return the `tokengate init` command line for these paths."""
    return f"tokengate init --vault {vault_path} --key-file {key_file}"


def read_key_file(key_file: Path, vault_path: Path) -> bytes:
    """Read and check the master key in `key_file`; raise KeyFileError if unusable."""
    try:
        status = key_file.stat()
    except FileNotFoundError:
        raise KeyFileError(_missing_message(key_file, vault_path)) from None
    except OSError as error:
        raise KeyFileError(
            f"cannot read the key file {key_file}: {error.strerror}"
        ) from None
    if not stat.S_ISREG(status.st_mode):
        raise KeyFileError(f"the key file {key_file} is not a regular file")
    if status.st_mode & 0o077:
        raise KeyFileError(
            f"the key file {key_file} is readable or writable by group or others "
            f"(mode {stat.S_IMODE(status.st_mode):04o}); run `chmod 600 {key_file}` "
            "and check who may have copied it"
        )
    try:
        text = key_file.read_text(encoding="ascii")
    except OSError as error:
        raise KeyFileError(
            f"cannot read the key file {key_file}: {error.strerror}"
        ) from None
    except UnicodeDecodeError:
        text = ""
    return _decode_key(text, key_file)


def _missing_message(key_file: Path, vault_path: Path) -> str:
    message = f"the key file {key_file} does not exist. "
    if vault_path.exists() and vault_path.stat().st_size > 0:
        return message + (
            f"The vault {vault_path} already exists, so restore its key file from your "
            f"backup or point --key-file (or $TOKENGATE_KEY_FILE) at it; "
            f"`{init_command(vault_path, key_file)}` only creates new vaults"
        )
    return message + f"Create a vault and its key with `{init_command(vault_path, key_file)}`"


def _decode_key(text: str, key_file: Path) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        key = b""
    if len(key) != KEY_SIZE:
        raise KeyFileError(
            f"the key file {key_file} does not contain a tokengate master key "
            f"(expected {KEY_SIZE} url-safe base64-encoded bytes on one line)"
        )
    return key


def generate_key() -> bytes:
    """Return a new random 256-bit key."""
    return os.urandom(KEY_SIZE)


def write_key_file(key_file: Path, key: bytes, *, exclusive: bool = True) -> None:
    """Write `key` to `key_file` with mode 0600 and flush it to disk.

    With `exclusive`, an existing file is never overwritten.
    """
    key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    descriptor = os.open(key_file, flags, KEY_FILE_MODE)
    try:
        os.fchmod(descriptor, KEY_FILE_MODE)
        os.write(descriptor, base64.urlsafe_b64encode(key) + b"\n")
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    _fsync_directory(key_file.parent)


def replace_key_file(key_file: Path, new_key_file: Path) -> Path:
    """Move `key_file` to a timestamped backup and `new_key_file` into its place.

    Returns the backup path. Both renames are atomic; the backup keeps mode 0600.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    backup = key_file.with_name(f"{key_file.name}.old-{stamp}")
    counter = 1
    while backup.exists():
        counter += 1
        backup = key_file.with_name(f"{key_file.name}.old-{stamp}-{counter}")
    os.link(key_file, backup)
    os.replace(new_key_file, key_file)
    _fsync_directory(key_file.parent)
    return backup


def pending_key_file(key_file: Path) -> Path:
    """Return where a master key rotation stages the new key before it commits."""
    return key_file.with_name(key_file.name + ".new")


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def derive_key(master_key: bytes, salt: bytes, info: bytes) -> bytes:
    """Derive a 256-bit subkey of the master key with HKDF-SHA256."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, info=info).derive(
        master_key
    )


def key_check_value(master_key: bytes, vault_id: bytes) -> bytes:
    """Return the value stored in the vault that identifies its master key."""
    check_key = derive_key(master_key, vault_id, KEY_CHECK_INFO)
    return hmac.new(check_key, KEY_CHECK_MESSAGE, hashlib.sha256).digest()
