"""SSE streams of the Anthropic Messages API."""

from __future__ import annotations

import json

import pytest

from addons.shapes import ApiShape
from addons.streaming import rewriter_for

from .conftest import (
    ALICE_TOKEN,
    EMAIL_TOKEN,
    byte_chunks,
    compact,
    random_chunks,
    run_stream,
)


def event(name: str, document: dict[str, object]) -> bytes:
    return f"event: {name}\ndata: {compact(document)}\n\n".encode()


def text_delta(index: int, text: str) -> bytes:
    return event(
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "text_delta", "text": text},
        },
    )


def json_delta(index: int, partial_json: str) -> bytes:
    return event(
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "input_json_delta", "partial_json": partial_json},
        },
    )


MESSAGE_START = event(
    "message_start",
    {
        "type": "message_start",
        "message": {"id": "msg_1", "role": "assistant", "content": []},
    },
)
TEXT_START = event(
    "content_block_start",
    {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    },
)
TOOL_START = event(
    "content_block_start",
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {
            "type": "tool_use",
            "id": "toolu_1",
            "name": "send",
            "input": {},
        },
    },
)
PING = b'event: ping\ndata: {"type": "ping"}\n\n'


def stop(index: int) -> bytes:
    return event("content_block_stop", {"type": "content_block_stop", "index": index})


MESSAGE_DELTA = event(
    "message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}}
)
MESSAGE_STOP = event("message_stop", {"type": "message_stop"})

STREAM = b"".join(
    [
        MESSAGE_START,
        TEXT_START,
        PING,
        text_delta(0, "Hi " + ALICE_TOKEN[:5]),
        text_delta(0, ALICE_TOKEN[5:] + ", mail bob@example.test"),
        stop(0),
        TOOL_START,
        json_delta(1, '{"to": "' + ALICE_TOKEN[:7]),
        json_delta(1, ALICE_TOKEN[7:] + '"}'),
        stop(1),
        MESSAGE_DELTA,
        MESSAGE_STOP,
    ]
)
CLIENT = b"".join(
    [
        MESSAGE_START,
        TEXT_START,
        PING,
        text_delta(0, "Hi "),
        text_delta(0, "Alice Novak, mail "),
        text_delta(0, EMAIL_TOKEN),
        stop(0),
        TOOL_START,
        json_delta(1, '{"to": '),
        json_delta(1, ""),
        json_delta(1, '"Alice Novak"}'),
        stop(1),
        MESSAGE_DELTA,
        MESSAGE_STOP,
    ]
)
RECORDED = CLIENT.replace(b"Alice Novak", ALICE_TOKEN.encode())


def messages_rewriter(processor):
    return rewriter_for(ApiShape.ANTHROPIC_MESSAGES, "text/event-stream", processor)


def test_blocks_restored_and_flushed_at_stop(processor):
    client, recorded = run_stream(messages_rewriter(processor), [STREAM])

    assert client == CLIENT
    assert recorded == RECORDED


def test_blocks_byte_by_byte(processor):
    client, recorded = run_stream(messages_rewriter(processor), byte_chunks(STREAM))

    assert client == CLIENT
    assert recorded == RECORDED


@pytest.mark.parametrize("seed", range(10))
def test_blocks_random_chunks(processor, seed):
    chunks = random_chunks(STREAM.replace(b"\n", b"\r\n"), seed)

    client, recorded = run_stream(messages_rewriter(processor), chunks)

    assert client == CLIENT.replace(b"\n", b"\r\n")
    assert recorded == RECORDED.replace(b"\n", b"\r\n")


def test_open_block_flushed_before_message_stop(processor):
    stream = TEXT_START + text_delta(0, "Hi " + ALICE_TOKEN) + MESSAGE_STOP

    client, _ = run_stream(messages_rewriter(processor), [stream])

    assert (
        client
        == TEXT_START
        + text_delta(0, "Hi ")
        + text_delta(0, "Alice Novak")
        + MESSAGE_STOP
    )


def test_open_block_flushed_at_end_of_stream(processor):
    stream = TEXT_START + text_delta(0, "Hi " + ALICE_TOKEN)

    client, recorded = run_stream(messages_rewriter(processor), [stream])

    assert client == TEXT_START + text_delta(0, "Hi ") + text_delta(0, "Alice Novak")
    assert recorded == TEXT_START + text_delta(0, "Hi ") + text_delta(0, ALICE_TOKEN)


def test_thinking_delta_processed(processor):
    thinking = event(
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "bob@example.test "},
        },
    )

    client, _ = run_stream(messages_rewriter(processor), [thinking])

    delta = json.loads(client.decode().split("data: ", 1)[1])["delta"]
    assert delta == {"type": "thinking_delta", "thinking": EMAIL_TOKEN + " "}


def test_error_event_message_processed(processor):
    error = event(
        "error",
        {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "bob@example.test"},
        },
    )

    client, _ = run_stream(messages_rewriter(processor), [error])

    assert client == event(
        "error",
        {
            "type": "error",
            "error": {"type": "overloaded_error", "message": EMAIL_TOKEN},
        },
    )
