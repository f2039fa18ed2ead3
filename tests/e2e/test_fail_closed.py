"""Requests the gateway cannot check are rejected in the API's format, never forwarded."""

from __future__ import annotations

import gzip
import json
import sqlite3
import threading
from collections.abc import Iterator

import httpx
import pytest

from .fake_model_server import FakeModelServer, ServerLog
from .harness import Gateway, run_mitmdump_until_exit, start_gateway

ALICE_EMAIL = "alice.novak@example.test"


@pytest.fixture(scope="module")
def strict_gateway(
    tmp_path_factory: pytest.TempPathFactory, model_server: FakeModelServer
) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("gateway-fail-closed")
    running = start_gateway(
        home,
        [
            "--set", f"tokengate_upstream=http://127.0.0.1:{model_server.port}",
            "--set", "tokengate_timeout=2",
        ],
    )
    yield running
    running.stop()


@pytest.fixture
def proxied(strict_gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(proxy=strict_gateway.proxy_url, trust_env=False, timeout=60) as client:
        yield client


@pytest.fixture
def base(model_server: FakeModelServer) -> str:
    return f"http://127.0.0.1:{model_server.port}"


def chat_body(text: str) -> bytes:
    return json.dumps(
        {"model": "fake-model", "messages": [{"role": "user", "content": text}]}
    ).encode()


def test_70_mb_body_rejected_with_413(
    proxied: httpx.Client, base: str, server_log: ServerLog
) -> None:
    before = len(server_log.requests)
    body = chat_body("x" * (70 * 1024 * 1024))
    response = proxied.post(
        f"{base}/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    error = response.json()["error"]
    assert response.status_code == 413
    assert error["code"] == "body_too_large"
    assert "tokengate_max_body" in error["message"]
    assert int(response.headers["content-length"]) == len(response.content)
    assert len(server_log.requests) == before


def test_unsupported_encoding_rejected_with_415(
    proxied: httpx.Client, base: str, server_log: ServerLog
) -> None:
    before = len(server_log.requests)
    response = proxied.post(
        f"{base}/v1/chat/completions",
        content=chat_body(ALICE_EMAIL),
        headers={"content-type": "application/json", "content-encoding": "compress"},
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_content_encoding"
    assert len(server_log.requests) == before


def test_gzip_body_decoded_and_length_updated(
    proxied: httpx.Client, base: str, server_log: ServerLog
) -> None:
    response = proxied.post(
        f"{base}/v1/chat/completions",
        content=gzip.compress(chat_body(f"mail {ALICE_EMAIL}")),
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    upstream = server_log.requests[-1]
    assert response.status_code == 200
    assert "content-encoding" not in upstream.headers
    assert int(upstream.headers["content-length"]) == len(upstream.body)
    assert ALICE_EMAIL not in upstream.body.decode()
    assert response.json()["choices"][0]["message"]["content"] == f"mail {ALICE_EMAIL}"


def test_unparseable_openai_body_rejected_with_400(
    proxied: httpx.Client, base: str, server_log: ServerLog
) -> None:
    before = len(server_log.requests)
    response = proxied.post(
        f"{base}/v1/chat/completions",
        content=b'{"messages": [' + ALICE_EMAIL.encode(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert ALICE_EMAIL not in response.text
    assert len(server_log.requests) == before


def test_unparseable_anthropic_body_in_anthropic_format(
    proxied: httpx.Client, base: str
) -> None:
    response = proxied.post(
        f"{base}/v1/messages", content=b"not json", headers={"content-type": "application/json"}
    )
    document = response.json()
    assert response.status_code == 400
    assert document["type"] == "error"
    assert document["error"]["type"] == "invalid_request_error"


def test_unparseable_ollama_body_in_ollama_format(proxied: httpx.Client, base: str) -> None:
    response = proxied.post(
        f"{base}/api/chat", content=b"not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)


def test_vault_failure_rejected_with_503(
    proxied: httpx.Client, base: str, strict_gateway: Gateway, server_log: ServerLog
) -> None:
    before = len(server_log.requests)
    database = sqlite3.connect(strict_gateway.home / "vault.db", isolation_level=None)
    database.execute("ALTER TABLE tokens RENAME TO tokens_moved_by_test")
    try:
        response = proxied.post(
            f"{base}/v1/chat/completions",
            content=chat_body("write to vault.failure@example.test"),
            headers={"content-type": "application/json"},
        )
    finally:
        database.execute("ALTER TABLE tokens_moved_by_test RENAME TO tokens")
        database.close()
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "detection_failed"
    assert "vault.failure@example.test" not in response.text
    assert len(server_log.requests) == before


def test_vault_lock_timeout_rejected_with_504(
    proxied: httpx.Client, base: str, strict_gateway: Gateway, server_log: ServerLog
) -> None:
    # The lock outlasts tokengate_timeout (2 s). A timer releases it, because the
    # recorder indexes the rejected flow in the vault before the client gets the 504.
    before = len(server_log.requests)
    database = sqlite3.connect(
        strict_gateway.home / "vault.db", isolation_level=None, check_same_thread=False
    )
    database.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(4.0, lambda: (database.execute("ROLLBACK"), database.close()))
    release.start()
    try:
        response = proxied.post(
            f"{base}/v1/chat/completions",
            content=chat_body("write to vault.timeout@example.test"),
            headers={"content-type": "application/json"},
        )
    finally:
        release.join()
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "detection_timeout"
    assert "tokengate_timeout" in response.json()["error"]["message"]
    assert len(server_log.requests) == before


def test_stream_large_bodies_stops_gateway(tmp_path, model_server: FakeModelServer) -> None:
    code, log = run_mitmdump_until_exit(
        tmp_path,
        [
            "--set", f"tokengate_upstream=http://127.0.0.1:{model_server.port}",
            "--set", "stream_large_bodies=1k",
        ],
    )
    assert code == 1
    assert "stream_large_bodies=1k" in log


def test_missing_model_host_stops_gateway(tmp_path) -> None:
    code, log = run_mitmdump_until_exit(tmp_path, [])
    assert code == 1
    assert "No model host is configured" in log


def test_invalid_option_value_stops_gateway(tmp_path) -> None:
    code, log = run_mitmdump_until_exit(
        tmp_path,
        ["--set", "tokengate_upstream=http://127.0.0.1:9", "--set", "tokengate_fail_mode=maybe"],
    )
    assert code == 1
    assert "Invalid tokengate_fail_mode 'maybe'" in log
