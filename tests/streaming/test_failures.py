"""Fail-closed behaviour of the stream rewriters and their factory."""

from __future__ import annotations

import json

import pytest

from addons import streaming
from addons.shapes import ApiShape
from addons.streaming import NdjsonRewriter, SseRewriter, StreamError, rewriter_for

from .conftest import ALICE_TOKEN, DictProcessor, chat_chunk, compact, sse


class FailingProcessor(DictProcessor):
    """Processor whose detection fails with a message that quotes the text."""

    def tokenize(self, text: str) -> str:
        raise RuntimeError(f"detector failed on {text!r}")


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/event-stream", SseRewriter),
        ("Text/Event-Stream; charset=utf-8", SseRewriter),
        ("application/x-ndjson", NdjsonRewriter),
        ("application/jsonl", NdjsonRewriter),
    ],
)
def test_rewriter_for_stream_types(processor, content_type, expected):
    rewriter = rewriter_for(ApiShape.OPENAI_CHAT, content_type, processor)

    assert type(rewriter) is expected


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", ""])
def test_rewriter_for_other_types_none(processor, content_type):
    assert rewriter_for(ApiShape.OPENAI_CHAT, content_type, processor) is None


def test_processor_error_ends_stream_with_error_event():
    rewriter = rewriter_for(
        ApiShape.OPENAI_CHAT, "text/event-stream", FailingProcessor()
    )

    output = rewriter.feed(sse(chat_chunk(""), chat_chunk("Hi Alice, ")))
    later = rewriter.feed(sse(chat_chunk("more text ")))
    end = rewriter.finish()

    events = output.decode().split("\n\n")
    assert events[0] == "data: " + chat_chunk("")
    error = json.loads(events[1].removeprefix("data: "))
    assert error["error"]["code"] == "stream_rewrite_failed"
    assert "RuntimeError" in error["error"]["message"]
    assert "Alice" not in output.decode()
    assert later == b""
    assert end == b""
    assert bytes(rewriter.recorded) == output
    assert isinstance(rewriter.error, StreamError)


def test_processor_error_anthropic_format():
    rewriter = rewriter_for(
        ApiShape.ANTHROPIC_MESSAGES, "text/event-stream", FailingProcessor()
    )
    delta = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "Hi Alice, "},
    }

    output = rewriter.feed(
        f"event: content_block_delta\ndata: {compact(delta)}\n\n".encode()
    )

    name, data = output.decode().split("\n")[:2]
    assert name == "event: error"
    assert json.loads(data.removeprefix("data: "))["error"]["type"] == "api_error"


def test_processor_error_ollama_format():
    rewriter = rewriter_for(
        ApiShape.OLLAMA_CHAT, "application/x-ndjson", FailingProcessor()
    )

    output = rewriter.feed(b'{"message":{"role":"assistant","content":"Hi Alice, "}}\n')

    assert output.endswith(b"\n")
    assert list(json.loads(output)) == ["error"]


def test_processor_error_in_finish():
    rewriter = rewriter_for(
        ApiShape.OPENAI_CHAT, "text/event-stream", FailingProcessor()
    )
    rewriter.feed(sse(chat_chunk("Alice")))

    output = rewriter.finish()

    assert b"stream_rewrite_failed" in output
    assert b"Alice" not in output


def test_invalid_utf8_fails_closed(processor):
    rewriter = rewriter_for(ApiShape.OPENAI_CHAT, "text/event-stream", processor)

    output = rewriter.feed(b'data: {"choices":"\xff"}\n\n')

    assert b"not valid UTF-8" in output
    assert rewriter.finish() == b""


def test_oversized_event_fails_closed(processor, monkeypatch):
    monkeypatch.setattr(streaming, "MAX_EVENT_BYTES", 64)
    rewriter = rewriter_for(ApiShape.OPENAI_CHAT, "text/event-stream", processor)

    output = rewriter.feed(b"data: " + b"x" * 100)

    assert b"exceeds the limit of 64 bytes" in output
    assert b"xxx" not in output


def test_feed_after_finish_raises(processor):
    rewriter = rewriter_for(ApiShape.OPENAI_CHAT, "text/event-stream", processor)
    rewriter.finish()

    with pytest.raises(StreamError, match="after finish"):
        rewriter.feed(b"data: x\n\n")


def test_finish_twice_raises(processor):
    rewriter = rewriter_for(ApiShape.OPENAI_CHAT, "text/event-stream", processor)
    rewriter.finish()

    with pytest.raises(StreamError, match="twice"):
        rewriter.finish()


def test_byte_order_mark_skipped(processor):
    rewriter = rewriter_for(ApiShape.OPENAI_CHAT, "text/event-stream", processor)
    stream = b"\xef\xbb\xbf" + sse(chat_chunk("ok "))

    output = b"".join(rewriter.feed(stream[i : i + 1]) for i in range(len(stream)))

    assert output == sse(chat_chunk("ok "))


def test_generic_shape_processes_each_event(processor):
    rewriter = rewriter_for(ApiShape.OPENAI_RESPONSES, "text/event-stream", processor)
    delta = {
        "type": "response.output_text.delta",
        "item_id": "msg_1",
        "delta": ALICE_TOKEN,
    }

    output = rewriter.feed(sse(compact(delta)))

    restored = {**delta, "delta": "Alice Novak"}
    assert output == sse(compact(restored))
