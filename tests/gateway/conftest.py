"""A configured Gateway addon in a mitmproxy test context, with a real vault and detector.

The detector is cached per process by the gateway, so spaCy loads once per test run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mitmproxy.addons import proxyserver
from mitmproxy.test import taddons

from addons.gateway import Gateway

UPSTREAM_KEY = "sk-upstream-unit"


@pytest.fixture
def gateway_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Gateway, taddons.context]]:
    monkeypatch.setenv("TOKENGATE_HOME", str(tmp_path))
    monkeypatch.setenv("TOKENGATE_UPSTREAM_KEY", UPSTREAM_KEY)
    gateway = Gateway()
    with taddons.context(proxyserver.Proxyserver(), gateway) as tctx:
        tctx.configure(
            gateway,
            tokengate_upstream="http://127.0.0.1:8000",
            tokengate_max_body="64k",
        )
        yield gateway, tctx
    gateway.done()
