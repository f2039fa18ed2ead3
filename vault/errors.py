"""Exceptions raised by the vault. Messages are for operators and never hold values."""


class VaultError(Exception):
    """Base class for vault failures. The message names what failed and the next step."""


class KeyFileError(VaultError):
    """The master key file is missing, unreadable, malformed or too widely readable."""


class KeyMismatchError(VaultError):
    """The master key does not belong to this vault."""


class SchemaError(VaultError):
    """The database is not a tokengate vault, is damaged, or has a newer schema."""


class VaultBusyError(VaultError):
    """A write transaction could not start within the retry bound."""


class RevealDenied(VaultError):
    """A reveal was refused; `reason` is "unknown", "namespace", "expired" or "origin"."""

    REASONS = ("unknown", "namespace", "expired", "origin")

    def __init__(self, token: str, reason: str) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"invalid reveal denial reason {reason!r}")
        self.token = token
        self.reason = reason
        super().__init__(f"reveal of {token} denied: {_REASON_TEXT[reason]}")


_REASON_TEXT = {
    "unknown": "no such token in this vault",
    "namespace": "the token belongs to another namespace",
    "expired": "the token has expired",
    "origin": "the token's origin is not allowed for this reveal",
}
