"""Error bodies in the format of each API."""

from __future__ import annotations

import json

import pytest

from addons.errors import Rejection, error_response, stream_error_event
from addons.shapes import ApiShape

TOO_LARGE = Rejection(413, "body_too_large", "The request body is too large.")


@pytest.mark.parametrize(
    "shape", [ApiShape.OPENAI_CHAT, ApiShape.OPENAI_EMBEDDINGS, ApiShape.GENERIC_JSON, None]
)
def test_openai_format(shape: ApiShape | None) -> None:
    response = error_response(shape, TOO_LARGE)
    assert response.status_code == 413
    assert json.loads(response.content) == {
        "error": {
            "message": "The request body is too large.",
            "type": "invalid_request_error",
            "param": None,
            "code": "body_too_large",
        }
    }


def test_anthropic_format() -> None:
    response = error_response(ApiShape.ANTHROPIC_MESSAGES, TOO_LARGE)
    assert json.loads(response.content) == {
        "type": "error",
        "error": {"type": "request_too_large", "message": "The request body is too large."},
    }


@pytest.mark.parametrize("shape", [ApiShape.OLLAMA_CHAT, ApiShape.OLLAMA_GENERATE])
def test_ollama_format(shape: ApiShape) -> None:
    response = error_response(shape, TOO_LARGE)
    assert json.loads(response.content) == {"error": "The request body is too large."}


def test_server_error_type() -> None:
    rejection = Rejection(503, "detection_failed", "failed")
    body = json.loads(error_response(ApiShape.OPENAI_CHAT, rejection).content)
    assert body["error"]["type"] == "server_error"


def test_content_length_matches_body() -> None:
    response = error_response(ApiShape.OPENAI_CHAT, TOO_LARGE)
    assert int(response.headers["content-length"]) == len(response.content)


def test_stream_error_event_sse() -> None:
    event = stream_error_event(ApiShape.OPENAI_CHAT, "text/event-stream", TOO_LARGE)
    assert event.startswith(b"event: error\ndata: {")
    assert event.endswith(b"\n\n")


def test_stream_error_event_ndjson() -> None:
    event = stream_error_event(ApiShape.OLLAMA_CHAT, "application/x-ndjson", TOO_LARGE)
    assert json.loads(event) == {"error": "The request body is too large."}
    assert event.endswith(b"}\n")
