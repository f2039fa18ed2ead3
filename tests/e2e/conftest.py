"""Fixtures for end-to-end tests: a fake model server and a gateway per test module.

Loading spaCy takes seconds, so each test module starts one gateway and its tests
share it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .fake_model_server import FakeModelServer, ServerLog, start_server
from .harness import Gateway, start_gateway, write_self_signed_certificate


@pytest.fixture(scope="module")
def server_log() -> ServerLog:
    return ServerLog()


@pytest.fixture(scope="module")
def model_server(server_log: ServerLog) -> Iterator[FakeModelServer]:
    server = start_server(log=server_log)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, model_server: FakeModelServer
) -> Iterator[Gateway]:
    """A gateway in regular proxy mode with the fake model server as upstream."""
    home = tmp_path_factory.mktemp("gateway")
    running = start_gateway(
        home, ["--set", f"tokengate_upstream=http://127.0.0.1:{model_server.port}"]
    )
    yield running
    running.stop()
