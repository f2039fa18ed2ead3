"""Error responses in the format of the API the client speaks.

Clients parse errors with their own SDK: the OpenAI client reads
`{"error": {"message", "type", "code"}}`, the Anthropic client reads
`{"type": "error", "error": {"type", "message"}}` and Ollama clients read
`{"error": "..."}`. Messages name the failing setting or limit, never body text.
"""

from __future__ import annotations

import json

from mitmproxy import http

from addons.shapes import ApiShape

_OLLAMA_SHAPES = frozenset(
    {ApiShape.OLLAMA_CHAT, ApiShape.OLLAMA_GENERATE, ApiShape.OLLAMA_EMBED}
)

# OpenAI error types by status; codes not listed are server errors.
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
}

# Anthropic Messages API error types by status.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    415: "invalid_request_error",
    529: "overloaded_error",
}


class Rejection(Exception):
    """A request or response the gateway does not forward.

    `code` is a stable machine-readable reason such as "body_too_large"; `message`
    is safe to show to the client and to log.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_body(shape: ApiShape | None, rejection: Rejection) -> bytes:
    """Serialize a rejection in the error format of `shape` (OpenAI when unknown)."""
    if shape is ApiShape.ANTHROPIC_MESSAGES:
        document: dict = {
            "type": "error",
            "error": {
                "type": _ANTHROPIC_TYPES.get(rejection.status, "api_error"),
                "message": rejection.message,
            },
        }
    elif shape in _OLLAMA_SHAPES:
        document = {"error": rejection.message}
    else:
        document = {
            "error": {
                "message": rejection.message,
                "type": _OPENAI_TYPES.get(rejection.status, "server_error"),
                "param": None,
                "code": rejection.code,
            }
        }
    return json.dumps(document).encode()


def error_response(shape: ApiShape | None, rejection: Rejection) -> http.Response:
    """Build a complete JSON error response for a rejection."""
    return http.Response.make(
        rejection.status,
        error_body(shape, rejection),
        {
            "content-type": "application/json",
            "x-tokengate-error": rejection.code,
        },
    )


def stream_error_event(
    shape: ApiShape | None, content_type: str, rejection: Rejection
) -> bytes:
    """Encode a rejection as one event of an SSE or NDJSON stream.

    Used when a stream fails after its headers were sent, so the status code can no
    longer change.
    """
    body = error_body(shape, rejection)
    if "ndjson" in content_type.lower():
        return body + b"\n"
    return b"event: error\ndata: " + body + b"\n\n"
