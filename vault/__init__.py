"""The encrypted token vault of tokengate: keys, tokens, audit log, sessions."""

from vault.store import (
    KeyFileError,
    KeyMismatchError,
    RevealDenied,
    SchemaError,
    TokenInfo,
    Vault,
    VaultBusyError,
    VaultError,
)
from vault.tokens import DEFAULT_FORMAT, TokenFormat, TokenMatch

__all__ = [
    "DEFAULT_FORMAT",
    "KeyFileError",
    "KeyMismatchError",
    "RevealDenied",
    "SchemaError",
    "TokenFormat",
    "TokenInfo",
    "TokenMatch",
    "Vault",
    "VaultBusyError",
    "VaultError",
]
