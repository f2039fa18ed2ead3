"""Credentials and raw values never reach logs, recordings or error messages.

The gateway runs with debug logging and header logging (flow_detail=2), its whole
output written to a log file, and recording on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .fake_model_server import FakeModelServer
from .harness import UPSTREAM_KEY, Gateway, start_gateway

CLIENT_BEARER = "sk-test-FAKE000"
CLIENT_API_KEY = "FAKE111"
CLIENT_COOKIE = "FAKECOOKIE333"
PII = {
    "name": "Jonas Ferreira-Ek",
    "email": "jonas.fe@example.test",
    "card": "4111 1111 1111 1111",
}
SECRETS = {
    "bearer": CLIENT_BEARER,
    "api key": CLIENT_API_KEY,
    "cookie": CLIENT_COOKIE,
    "upstream key": UPSTREAM_KEY,
    **PII,
}
HEADERS = {
    "authorization": f"Bearer {CLIENT_BEARER}",
    "x-api-key": CLIENT_API_KEY,
    "cookie": f"session={CLIENT_COOKIE}",
    "content-type": "application/json",
}
PROMPT = f"I am {PII['name']}, mail {PII['email']}, card {PII['card']}"


@pytest.fixture(scope="module")
def debug_gateway(
    tmp_path_factory: pytest.TempPathFactory, model_server: FakeModelServer
) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("gateway-debug")
    running = start_gateway(
        home,
        [
            "--set", f"tokengate_upstream=http://127.0.0.1:{model_server.port}",
            "--set", "termlog_verbosity=debug",
            "--set", "flow_detail=2",
        ],
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def error_messages(debug_gateway: Gateway, model_server: FakeModelServer) -> list[str]:
    """Send every kind of request once; return the error bodies the client got."""
    base = f"http://127.0.0.1:{model_server.port}"
    chat = {"model": "fake-model", "messages": [{"role": "user", "content": PROMPT}]}
    errors = []
    with httpx.Client(proxy=debug_gateway.proxy_url, trust_env=False, timeout=30) as client:
        assert client.post(f"{base}/v1/chat/completions", json=chat, headers=HEADERS).status_code == 200
        with client.stream(
            "POST", f"{base}/v1/chat/completions", json={**chat, "stream": True}, headers=HEADERS
        ) as response:
            response.read()
        leak = {**HEADERS, "x-fake-reply": "leak"}
        client.post(f"{base}/v1/chat/completions", json=chat, headers=leak)
        broken = client.post(
            f"{base}/v1/chat/completions", content=PROMPT.encode(), headers=HEADERS
        )
        errors.append(broken.text)
        other = client.post("http://example.test/v1/chat/completions", json=chat, headers=HEADERS)
        errors.append(other.text)
        failing = client.post(
            f"{base}/v1/chat/completions", json=chat, headers={**HEADERS, "x-fake-status": "500"}
        )
        errors.append(failing.text)
    debug_gateway.stop()
    return errors


def recorded_bytes(home: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted((home / "recordings").glob("*")))


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_value_absent_from_log(debug_gateway: Gateway, error_messages: list[str], name: str) -> None:
    assert SECRETS[name] not in debug_gateway.log_text()


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_value_absent_from_recordings(
    debug_gateway: Gateway, error_messages: list[str], name: str
) -> None:
    assert SECRETS[name].encode() not in recorded_bytes(debug_gateway.home)


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_value_absent_from_error_messages(error_messages: list[str], name: str) -> None:
    assert all(SECRETS[name] not in message for message in error_messages)


@pytest.mark.parametrize("name", sorted(PII))
def test_value_absent_from_vault_files(
    debug_gateway: Gateway, error_messages: list[str], name: str
) -> None:
    files = sorted(debug_gateway.home.glob("vault.db*"))
    assert files
    assert all(PII[name].encode() not in path.read_bytes() for path in files)


def test_debug_log_was_written(debug_gateway: Gateway, error_messages: list[str]) -> None:
    log = debug_gateway.log_text()
    assert "ms in the rewriter" in log  # logged at debug level only
    assert "request tokenized" in log


def test_recordings_were_written(debug_gateway: Gateway, error_messages: list[str]) -> None:
    assert len(recorded_bytes(debug_gateway.home)) > 0
    assert json.loads(error_messages[0])["error"]["code"] == "invalid_body"
