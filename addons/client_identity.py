"""Principal, namespace and session ids derived from a client request.

Ids are keyed HMAC-SHA256 digests under a per-installation secret, so they are stable
across restarts, unrelated between installations, and do not reveal the credential,
address or message they were derived from.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SESSION_HEADER = "x-tokengate-session"
CREDENTIAL_HEADERS = ("authorization", "x-api-key", "api-key", "proxy-authorization")
SECRET_BYTES = 32

_SESSION_VALUE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class IdentityError(Exception):
    """The identity secret file is missing, unreadable or malformed."""


@dataclass(frozen=True)
class ClientIdentity:
    principal: str
    namespace: str


def load_or_create_secret(path: Path) -> bytes:
    """Read the identity secret, creating it (mode 0600) when it does not exist."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as e:
        raise IdentityError(f"Cannot create identity secret {path}: {e.strerror}.") from e
    else:
        with os.fdopen(fd, "wb") as file:
            file.write(secrets.token_bytes(SECRET_BYTES).hex().encode())
    try:
        text = path.read_text(encoding="ascii").strip()
        secret = bytes.fromhex(text)
    except (OSError, ValueError) as e:
        raise IdentityError(
            f"Cannot read identity secret {path}: expected {SECRET_BYTES} bytes as "
            "hex. Restore the file from backup; replacing it changes every namespace."
        ) from e
    if len(secret) != SECRET_BYTES:
        raise IdentityError(
            f"Invalid identity secret {path}: expected {SECRET_BYTES} bytes as hex."
        )
    return secret


class IdentityDeriver:
    """Derive ids from client credentials, addresses and conversations."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _digest(self, purpose: str, *parts: str) -> str:
        message = json.dumps([purpose, *parts]).encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    @staticmethod
    def explicit_session(namespace: str, header_value: str) -> str:
        return f"{namespace}.{header_value}"

    def identify(self, credential: str | None, client_address: str) -> ClientIdentity:
        """Derive the principal from a credential, or from the address without one.

        Each principal gets its own namespace.
        """
        if credential:
            principal = "key-" + self._digest("credential", credential)[:16]
        else:
            principal = "addr-" + self._digest("address", client_address)[:16]
        return ClientIdentity(principal=principal, namespace=principal)

    def session(
        self, namespace: str, header_value: str | None, document: Any, shape_name: str
    ) -> str:
        """Return the session id for a request.

        An explicit session header is used as given (prefixed with the namespace, so
        two principals cannot share a session). Otherwise the session is a digest of
        the system prompt and first user message, so every turn of a chat lands in
        the same session. Requests without a conversation share one session per
        namespace and API shape.
        """
        if header_value is not None:
            return self.explicit_session(namespace, header_value)
        opening = conversation_opening(document)
        if opening is None:
            return f"{namespace}.{shape_name.lower()}"
        return "s-" + self._digest("session", namespace, opening)[:20]


def is_valid_session_header(value: str) -> bool:
    return bool(_SESSION_VALUE.match(value))


def credential_from_headers(headers: Any) -> str | None:
    """Return the client's credential from the first credential header present."""
    for name in CREDENTIAL_HEADERS:
        value = headers.get(name)
        if value:
            scheme, _, rest = value.strip().partition(" ")
            if scheme.lower() in ("bearer", "basic") and rest:
                return rest.strip()
            return value.strip()
    return None


def conversation_opening(document: Any) -> str | None:
    """Return canonical text of the system prompt and first user message, or None."""
    if not isinstance(document, dict):
        return None
    messages = document.get("messages")
    if not isinstance(messages, list):
        messages = document.get("input") if isinstance(document.get("input"), list) else None
    if not messages:
        return None
    opening: list[Any] = []
    if "system" in document:
        opening.append(document["system"])
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            opening.append(content)
        elif role == "user":
            opening.append(content)
            break
    if not opening:
        return None
    return json.dumps(opening, sort_keys=True, ensure_ascii=False)
