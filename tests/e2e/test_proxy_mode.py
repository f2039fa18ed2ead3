"""The gateway in regular proxy mode, driven by the official openai client."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from .fake_model_server import FAKE_CUSTOMER_RECORD, FakeModelServer, ServerLog
from .harness import UPSTREAM_KEY, Gateway

CLIENT_KEY = "sk-test-FAKE000"
ALICE = "Alice Novak"
ALICE_EMAIL = "alice.novak@example.test"


@pytest.fixture
def client(
    gateway: Gateway, model_server: FakeModelServer, monkeypatch: pytest.MonkeyPatch
) -> openai.OpenAI:
    monkeypatch.setenv("HTTP_PROXY", gateway.proxy_url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    return openai.OpenAI(
        base_url=f"http://127.0.0.1:{model_server.port}/v1", api_key=CLIENT_KEY, max_retries=0
    )


def test_chat_tokenized_upstream_restored_for_client(
    client: openai.OpenAI, server_log: ServerLog
) -> None:
    prompt = f"My name is {ALICE} and my email is {ALICE_EMAIL}."
    completion = client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": prompt}]
    )
    received = server_log.requests[-1]
    assert ALICE not in received.body.decode()
    assert ALICE_EMAIL not in received.body.decode()
    assert "[PERSON_" in received.body.decode()
    assert completion.choices[0].message.content == prompt
