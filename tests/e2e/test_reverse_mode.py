"""The gateway as a reverse proxy: clients set base_url to the gateway."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from .fake_model_server import FakeModelServer, ServerLog
from .harness import UPSTREAM_KEY, Gateway, start_gateway

ALICE = "Alice Novak"


@pytest.fixture(scope="module")
def reverse_gateway(
    tmp_path_factory: pytest.TempPathFactory, model_server: FakeModelServer
) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("gateway-reverse")
    running = start_gateway(
        home, ["--mode", f"reverse:http://127.0.0.1:{model_server.port}"]
    )
    yield running
    running.stop()


@pytest.fixture
def client(reverse_gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"http://127.0.0.1:{reverse_gateway.port}/v1",
        api_key="sk-test-FAKE000",
        max_retries=0,
    )


def test_reverse_chat_restores_values(client: openai.OpenAI, server_log: ServerLog) -> None:
    prompt = f"I am {ALICE}"
    completion = client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": prompt}]
    )
    upstream = server_log.requests[-1]
    assert ALICE not in upstream.body.decode()
    assert upstream.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert completion.choices[0].message.content == prompt


def test_reverse_stream_restores_values(client: openai.OpenAI) -> None:
    prompt = f"I am {ALICE}"
    stream = client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": prompt}], stream=True
    )
    answer = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert answer == prompt


def test_reverse_mode_log_names_model_host(
    reverse_gateway: Gateway, model_server: FakeModelServer
) -> None:
    assert f"model hosts 127.0.0.1:{model_server.port}" in reverse_gateway.log_text()
