"""Fixtures for recording and replay tests: a real vault and gateway-marked flows."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.test import tflow
from mitmproxy.test import taddons
from mitmproxy.test import tutils

from addons.recording import Recorder
from vault import Vault

NAMESPACE = "ns-alice"
PRINCIPAL = "alice"
# The installed command line, next to the interpreter that runs the tests.
TOKENGATE = Path(sys.executable).with_name("tokengate")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def vault(tmp_path: Path):
    opened = Vault.open(tmp_path / "vault.db", tmp_path / "master.key", create=True)
    yield opened
    opened.close()


def chat_request_body(*messages: tuple[str, str]) -> bytes:
    document = {
        "model": "m1",
        "messages": [{"role": role, "content": text} for role, text in messages],
    }
    return json.dumps(document).encode()


def chat_response_body(text: str) -> bytes:
    document = {
        "id": "c1",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
    }
    return json.dumps(document).encode()


def model_flow(
    *,
    session: str = "s1",
    raw_request: bytes = b'{"raw": "request"}',
    recorded_request: bytes = b'{"recorded": "request"}',
    raw_response: bytes | None = b'{"raw": "response"}',
    recorded_response: bytes | None = b'{"recorded": "response"}',
    counts: dict[str, int] | None = None,
    decisions: list[str] | None = None,
    request_headers: list[tuple[bytes, bytes]] = (),
    response_headers: list[tuple[bytes, bytes]] = (),
    path: bytes = b"/v1/chat/completions",
) -> http.HTTPFlow:
    """Build a flow as the gateway leaves it before the Recorder runs."""
    request = tutils.treq(
        host="127.0.0.1",
        port=8000,
        method=b"POST",
        path=path,
        headers=http.Headers(
            [(b"content-type", b"application/json"), *request_headers]
        ),
        content=raw_request,
    )
    response = None
    if raw_response is not None:
        response = tutils.tresp(
            headers=http.Headers(
                [(b"content-type", b"application/json"), *response_headers]
            ),
            content=raw_response,
        )
    flow = tflow.tflow(req=request, resp=response or False)
    flow.metadata["tokengate"] = {
        "principal": PRINCIPAL,
        "namespace": NAMESPACE,
        "session": session,
        "shape": "openai_chat",
        "counts": counts if counts is not None else {"PERSON": 1},
        "decisions": decisions if decisions is not None else ["tokenized"],
        "recorded_request": recorded_request,
        "recorded_response": recorded_response,
    }
    return flow


async def record_flows(vault: Vault, recordings: Path, flows) -> None:
    """Run flows through a real Recorder that writes to `recordings`."""
    recorder = Recorder(lambda: vault)
    with taddons.context(recorder) as tctx:
        tctx.configure(recorder, tokengate_recordings=str(recordings))
        for flow in flows:
            await recorder.response(flow)
    assert recorder.failures == 0
