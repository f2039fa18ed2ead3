"""Principal, namespace and session ids."""

from __future__ import annotations

import stat
from pathlib import Path

from mitmproxy.http import Headers

from addons.client_identity import (
    IdentityDeriver,
    credential_from_headers,
    load_or_create_secret,
)

SECRET = bytes(range(32))


def chat(*messages: tuple[str, str]) -> dict:
    return {"messages": [{"role": role, "content": content} for role, content in messages]}


def test_same_credential_same_principal() -> None:
    deriver = IdentityDeriver(SECRET)
    assert deriver.identify("sk-a", "10.0.0.1") == deriver.identify("sk-a", "10.0.0.2")


def test_other_credential_other_namespace() -> None:
    deriver = IdentityDeriver(SECRET)
    assert deriver.identify("sk-a", "x").namespace != deriver.identify("sk-b", "x").namespace


def test_principal_never_contains_credential() -> None:
    identity = IdentityDeriver(SECRET).identify("sk-test-FAKE000", "x")
    assert "FAKE000" not in identity.principal
    assert identity.principal.startswith("key-")


def test_address_principal_without_credential() -> None:
    identity = IdentityDeriver(SECRET).identify(None, "10.0.0.1")
    assert identity.principal.startswith("addr-")
    assert "10.0.0.1" not in identity.principal


def test_other_secret_other_principal() -> None:
    first = IdentityDeriver(SECRET).identify("sk-a", "x")
    second = IdentityDeriver(bytes(32)).identify("sk-a", "x")
    assert first != second


def test_credential_from_bearer_and_api_key_headers() -> None:
    assert credential_from_headers(Headers(authorization="Bearer sk-a")) == "sk-a"
    assert credential_from_headers(Headers([(b"x-api-key", b"k1")])) == "k1"
    assert credential_from_headers(Headers()) is None


def test_session_stable_across_turns() -> None:
    deriver = IdentityDeriver(SECRET)
    first = chat(("system", "be brief"), ("user", "hello"))
    later = chat(("system", "be brief"), ("user", "hello"), ("assistant", "hi"), ("user", "more"))
    assert deriver.session("ns", None, first, "openai_chat") == deriver.session(
        "ns", None, later, "openai_chat"
    )


def test_session_differs_by_first_message_and_namespace() -> None:
    deriver = IdentityDeriver(SECRET)
    one = deriver.session("ns", None, chat(("user", "hello")), "openai_chat")
    assert one != deriver.session("ns", None, chat(("user", "other")), "openai_chat")
    assert one != deriver.session("ns2", None, chat(("user", "hello")), "openai_chat")


def test_session_explicit_header_prefixed_with_namespace() -> None:
    deriver = IdentityDeriver(SECRET)
    assert deriver.session("ns", "case-17", chat(("user", "x")), "openai_chat") == "ns.case-17"


def test_session_without_conversation_per_shape() -> None:
    deriver = IdentityDeriver(SECRET)
    assert deriver.session("ns", None, {"input": "text"}, "openai_embeddings") == (
        "ns.openai_embeddings"
    )


def test_secret_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "identity.key"
    first = load_or_create_secret(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == first
    assert len(first) == 32
