"""HTTPS through CONNECT: the client trusts mitmproxy's CA, the gateway the model's."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .fake_model_server import FakeModelServer, ServerLog, start_server
from .harness import Gateway, start_gateway

ALICE_EMAIL = "alice.novak@example.test"


@pytest.fixture(scope="module")
def tls_server(tls_files: tuple[Path, Path], server_log: ServerLog) -> Iterator[FakeModelServer]:
    server = start_server(log=server_log, tls=tls_files)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def tls_gateway(
    tmp_path_factory: pytest.TempPathFactory,
    tls_server: FakeModelServer,
    tls_files: tuple[Path, Path],
) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("gateway-https")
    running = start_gateway(
        home,
        [
            "--set", f"tokengate_upstream=https://127.0.0.1:{tls_server.port}",
            "--set", f"ssl_verify_upstream_trusted_ca={tls_files[0]}",
        ],
    )
    yield running
    running.stop()


def test_https_chat_tokenized_and_restored(
    tls_gateway: Gateway, tls_server: FakeModelServer, server_log: ServerLog
) -> None:
    prompt = f"Write to {ALICE_EMAIL}"
    body = {"model": "fake-model", "messages": [{"role": "user", "content": prompt}]}
    with httpx.Client(
        proxy=tls_gateway.proxy_url,
        verify=ssl.create_default_context(cafile=tls_gateway.ca_cert),
        trust_env=False,
    ) as client:
        response = client.post(
            f"https://127.0.0.1:{tls_server.port}/v1/chat/completions", json=body
        )
    assert response.status_code == 200
    assert ALICE_EMAIL not in server_log.requests[-1].body.decode()
    assert response.json()["choices"][0]["message"]["content"] == prompt


def test_https_client_without_ca_fails(
    tls_gateway: Gateway, tls_server: FakeModelServer, server_log: ServerLog
) -> None:
    before = len(server_log.requests)
    with httpx.Client(proxy=tls_gateway.proxy_url, trust_env=False) as client:
        with pytest.raises(httpx.ConnectError):
            client.get(f"https://127.0.0.1:{tls_server.port}/v1/models")
    assert len(server_log.requests) == before
