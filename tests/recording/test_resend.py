"""`tokengate resend` against a model that produces values the client never sent.

Each recording contains the response as the gateway records it: the body tokenized by
`Pipeline.process_response`, or a stream fed in small chunks through the rewriter of
`rewriter_for`. The resent answer must match it token for token, and no raw value may
reach the output.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from addons.detection import Detector
from addons.gateway import STREAM_RELEASE_CHARS
from addons.pipeline import Pipeline
from addons.replay import ResponseTokenizer
from addons.shapes import ApiShape
from addons.streaming import rewriter_for
from tests.e2e.fake_model_server import FakeModelServer
from tests.e2e.fake_model_server import start_server
from tests.recording.conftest import NAMESPACE
from tests.recording.conftest import PRINCIPAL
from tests.recording.conftest import TOKENGATE
from tests.recording.conftest import chat_request_body
from tests.recording.conftest import chat_response_body
from tests.recording.conftest import model_flow
from tests.recording.conftest import record_flows
from vault import Vault

LEAK_HEADERS = [(b"x-fake-reply", b"leak")]
TOOL_HEADERS = [
    (b"x-fake-kind", b"tool"),
    (b"x-fake-deltas", json.dumps(['{"note": "Call Karl', ' Gustafsson"}']).encode()),
]
RAW_VALUES = (
    "Mara Lindqvist",
    "mara.lindqvist@example.test",
    "4111 1111 1111 1111",
    "Karl Gustafsson",
)
# Bytes per piece when a recorded stream is fed to the rewriter, as from a network.
STREAM_PIECE_BYTES = 7


@pytest.fixture(scope="session")
def detector() -> Detector:
    return Detector()


@pytest.fixture(scope="module")
def model_server() -> Iterator[FakeModelServer]:
    server = start_server()
    yield server
    server.shutdown()
    server.server_close()


def _model_url(server: FakeModelServer) -> str:
    return f"http://127.0.0.1:{server.port}"


def _post(
    url: str, body: bytes, headers: list[tuple[bytes, bytes]]
) -> tuple[str, bytes]:
    request = urllib.request.Request(
        url + "/v1/chat/completions",
        data=body,
        headers={
            "content-type": "application/json",
            **{name.decode(): value.decode() for name, value in headers},
        },
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=30) as response:
        return response.headers.get("content-type", ""), response.read()


def _gateway_recorded_body(
    pipeline: Pipeline, content_type: str, body: bytes
) -> bytes:
    """Tokenize a model response with the calls the gateway makes before recording."""
    processor = pipeline.response_text_processor(NAMESPACE, PRINCIPAL)
    rewriter = rewriter_for(
        ApiShape.OPENAI_CHAT,
        content_type,
        processor,
        min_release_chars=STREAM_RELEASE_CHARS,
    )
    if rewriter is None:
        return pipeline.process_response(
            ApiShape.OPENAI_CHAT, body, NAMESPACE, PRINCIPAL
        ).recorded_body
    for start in range(0, len(body), STREAM_PIECE_BYTES):
        rewriter.feed(body[start : start + STREAM_PIECE_BYTES])
    rewriter.finish()
    return bytes(rewriter.recorded)


@dataclass
class LeakSession:
    vault_path: Path
    key_file: Path
    recorded_response: bytes

    def resend(self, url: str) -> subprocess.CompletedProcess[str]:
        command = [
            str(TOKENGATE),
            "resend",
            "leak-1",
            "--to",
            url,
            "--vault",
            str(self.vault_path),
            "--key-file",
            str(self.key_file),
        ]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=300, env=dict(os.environ)
        )


def _record_leak(
    tmp_path: Path,
    detector: Detector,
    server: FakeModelServer,
    request_headers: list[tuple[bytes, bytes]],
    *,
    stream: bool,
    recorded_response: bytes | None = None,
) -> LeakSession:
    """Record one chat turn whose response comes from the fake model server.

    `recorded_response` replaces the response the gateway would have recorded.
    """
    vault_path = tmp_path / "vault.db"
    key_file = tmp_path / "master.key"
    vault = Vault.open(vault_path, key_file, create=True)
    document = json.loads(chat_request_body(("user", "Who is the customer?")))
    document["stream"] = stream
    request_body = json.dumps(document).encode()
    content_type, body = _post(_model_url(server), request_body, request_headers)
    if recorded_response is None:
        pipeline = Pipeline(detector, vault)
        recorded_response = _gateway_recorded_body(pipeline, content_type, body)

    flow = model_flow(
        session="leak-1",
        raw_request=request_body,
        recorded_request=request_body,
        raw_response=body,
        recorded_response=recorded_response,
        request_headers=request_headers,
    )
    flow.response.headers["content-type"] = content_type
    flow.metadata["tokengate"]["shape"] = ApiShape.OPENAI_CHAT.name
    asyncio.run(record_flows(vault, tmp_path / "recordings", [flow]))
    vault.close()
    return LeakSession(vault_path, key_file, recorded_response)


def _assert_no_raw_values(result: subprocess.CompletedProcess[str]) -> None:
    for value in RAW_VALUES:
        assert value not in result.stdout
        assert value not in result.stderr


def test_recording_holds_no_raw_value(tmp_path, detector, model_server):
    session = _record_leak(tmp_path, detector, model_server, LEAK_HEADERS, stream=False)

    recorded = session.recorded_response.decode()
    assert "[PERSON_" in recorded
    assert "[EMAIL_ADDRESS_" in recorded
    for value in RAW_VALUES:
        assert value not in recorded


@pytest.mark.parametrize(
    ("headers", "stream"),
    [
        (LEAK_HEADERS, False),
        (LEAK_HEADERS, True),
        (TOOL_HEADERS, False),
        (TOOL_HEADERS, True),
    ],
    ids=["leak-plain", "leak-streamed", "tool-plain", "tool-streamed"],
)
def test_resend_model_values_same(tmp_path, detector, model_server, headers, stream):
    session = _record_leak(tmp_path, detector, model_server, headers, stream=stream)

    result = session.resend(_model_url(model_server))

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("status 200 -> 200  same")
    assert "1 same, 0 different" in result.stderr
    _assert_no_raw_values(result)


def test_resend_diff_shows_only_tokens(tmp_path, detector, model_server):
    session = _record_leak(
        tmp_path,
        detector,
        model_server,
        LEAK_HEADERS,
        stream=False,
        recorded_response=chat_response_body("No customer found"),
    )

    result = session.resend(_model_url(model_server))

    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("status 200 -> 200  different")
    assert "    -[assistant] No customer found" in lines
    added = [line for line in lines if line.startswith("    +[assistant]")]
    assert len(added) == 1
    assert "[PERSON_" in added[0]
    assert "[EMAIL_ADDRESS_" in added[0]
    _assert_no_raw_values(result)


def test_tokenizer_rejects_restoring_pipeline(detector, vault):
    pipeline = Pipeline(detector, vault)

    with pytest.raises(ValueError, match="restore_origins=\\(\\)"):
        ResponseTokenizer(pipeline, NAMESPACE, "resend:test")


def test_tokenizer_keeps_client_tokens(detector, vault):
    client_token = vault.tokenize("Mara Lindqvist", "PERSON", NAMESPACE)
    tokenizer = ResponseTokenizer(
        Pipeline(detector, vault, restore_origins=()), NAMESPACE, "resend:test"
    )

    body = tokenizer.recorded_body(
        ApiShape.OPENAI_CHAT,
        "application/json",
        chat_response_body("Customer Mara Lindqvist called."),
    )

    document = json.loads(body)
    content = document["choices"][0]["message"]["content"]
    assert content == f"Customer {client_token} called."


def test_tokenizer_plain_text_fallback(detector, vault):
    tokenizer = ResponseTokenizer(
        Pipeline(detector, vault, restore_origins=()), NAMESPACE, "resend:test"
    )

    body = tokenizer.recorded_body(
        ApiShape.OPENAI_CHAT,
        "application/json",
        b"not json: write to mara.lindqvist@example.test",
    )

    assert body.startswith(b"not json: write to [EMAIL_ADDRESS_")
    assert b"mara.lindqvist" not in body


def test_sessions_closed_stdout_quiet(tmp_path, vault):
    asyncio.run(record_flows(vault, tmp_path / "recordings", [model_flow()]))
    read_end, write_end = os.pipe()
    # A reader that exits before anything is written, as `head` may.
    os.close(read_end)
    try:
        result = subprocess.run(
            [
                str(TOKENGATE),
                "sessions",
                "--vault",
                str(tmp_path / "vault.db"),
                "--key-file",
                str(tmp_path / "master.key"),
            ],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)

    assert result.stderr == ""
    assert result.returncode == 1
