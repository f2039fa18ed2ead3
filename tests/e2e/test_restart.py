"""Tokens stay the same when the gateway restarts on the same vault."""

from __future__ import annotations

import re

import httpx
import pytest

from .fake_model_server import FakeModelServer, ServerLog
from .harness import start_gateway

TOKEN = re.compile(r"\[[A-Z_]+_\d+\]")
PROMPT = "I am Alice Novak, mail alice.novak@example.test"


def send_chat(proxy_url: str, port: int) -> httpx.Response:
    body = {"model": "fake-model", "messages": [{"role": "user", "content": PROMPT}]}
    with httpx.Client(proxy=proxy_url, trust_env=False, timeout=30) as client:
        return client.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json=body,
            headers={"authorization": "Bearer sk-test-FAKE000"},
        )


def test_restart_keeps_tokens_stable(
    tmp_path: pytest.TempPathFactory, model_server: FakeModelServer, server_log: ServerLog
) -> None:
    args = ["--set", f"tokengate_upstream=http://127.0.0.1:{model_server.port}"]
    first = start_gateway(tmp_path, args)
    try:
        send_chat(first.proxy_url, model_server.port)
    finally:
        first.stop()
    tokens_before = TOKEN.findall(server_log.requests[-1].body.decode())

    second = start_gateway(tmp_path, args)
    try:
        response = send_chat(second.proxy_url, model_server.port)
    finally:
        second.stop()
    tokens_after = TOKEN.findall(server_log.requests[-1].body.decode())

    assert len(tokens_before) == 2
    assert tokens_after == tokens_before
    assert response.json()["choices"][0]["message"]["content"] == PROMPT
