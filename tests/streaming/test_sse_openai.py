"""SSE streams of OpenAI chat completions and completions."""

from __future__ import annotations

import pytest

from addons.shapes import ApiShape
from addons.streaming import rewriter_for

from .conftest import (
    ALICE_TOKEN,
    EMAIL_TOKEN,
    byte_chunks,
    chat_chunk,
    compact,
    random_chunks,
    run_stream,
    sse,
)

SPLIT_AT = len("[PERS")

# A token split across two events, as in a model copying "[PERSON_13]" token by token.
SPLIT_TOKEN_STREAM = sse(
    chat_chunk(""),
    chat_chunk("Hi " + ALICE_TOKEN[:SPLIT_AT]),
    chat_chunk(ALICE_TOKEN[SPLIT_AT:] + ", done"),
    chat_chunk(finish_reason="stop"),
    "[DONE]",
)
SPLIT_TOKEN_CLIENT = sse(
    chat_chunk(""),
    chat_chunk("Hi "),
    chat_chunk("Alice Novak, "),
    chat_chunk("done", finish_reason="stop"),
    "[DONE]",
)
SPLIT_TOKEN_RECORDED = sse(
    chat_chunk(""),
    chat_chunk("Hi "),
    chat_chunk(ALICE_TOKEN + ", "),
    chat_chunk("done", finish_reason="stop"),
    "[DONE]",
)


def chat_rewriter(processor):
    return rewriter_for(
        ApiShape.OPENAI_CHAT, "text/event-stream; charset=utf-8", processor
    )


def test_split_token_restored_per_event(processor):
    rewriter = chat_rewriter(processor)
    events = SPLIT_TOKEN_STREAM.split(b"\n\n")

    first = rewriter.feed(events[0] + b"\n\n")
    second = rewriter.feed(events[1] + b"\n\n")
    rest = rewriter.feed(b"\n\n".join(events[2:]))
    rest += rewriter.finish()

    assert first == sse(chat_chunk(""))
    assert second == sse(chat_chunk("Hi "))
    assert first + second + rest == SPLIT_TOKEN_CLIENT
    assert bytes(rewriter.recorded) == SPLIT_TOKEN_RECORDED
    assert processor.restored == 1


def test_split_token_byte_by_byte(processor):
    client, recorded = run_stream(
        chat_rewriter(processor), byte_chunks(SPLIT_TOKEN_STREAM)
    )

    assert client == SPLIT_TOKEN_CLIENT
    assert recorded == SPLIT_TOKEN_RECORDED


@pytest.mark.parametrize("seed", range(20))
def test_split_token_random_chunks(processor, seed):
    chunks = random_chunks(SPLIT_TOKEN_STREAM, seed)

    client, recorded = run_stream(chat_rewriter(processor), chunks)

    assert client == SPLIT_TOKEN_CLIENT
    assert recorded == SPLIT_TOKEN_RECORDED


@pytest.mark.parametrize("seed", range(5))
def test_crlf_line_endings_kept(processor, seed):
    stream = SPLIT_TOKEN_STREAM.replace(b"\n", b"\r\n")

    client, recorded = run_stream(chat_rewriter(processor), random_chunks(stream, seed))

    assert client == SPLIT_TOKEN_CLIENT.replace(b"\n", b"\r\n")
    assert recorded == SPLIT_TOKEN_RECORDED.replace(b"\n", b"\r\n")


def test_cr_line_endings_kept(processor):
    stream = SPLIT_TOKEN_STREAM.replace(b"\n", b"\r")

    client, _ = run_stream(chat_rewriter(processor), byte_chunks(stream))

    assert client == SPLIT_TOKEN_CLIENT.replace(b"\n", b"\r")


def test_first_event_sent_before_finish(processor):
    rewriter = chat_rewriter(processor)

    output = rewriter.feed(sse(chat_chunk("Hello there, ")))

    assert output == sse(chat_chunk("Hello there, "))


def test_held_tail_flushed_before_done(processor):
    stream = sse(chat_chunk("Hi " + ALICE_TOKEN), "[DONE]")

    client, recorded = run_stream(chat_rewriter(processor), [stream])

    assert client == sse(chat_chunk("Hi "), chat_chunk("Alice Novak"), "[DONE]")
    assert recorded == sse(chat_chunk("Hi "), chat_chunk(ALICE_TOKEN), "[DONE]")


def test_held_tail_flushed_at_end_of_stream(processor):
    stream = sse(chat_chunk("write to bob@example.test"))

    client, recorded = run_stream(chat_rewriter(processor), byte_chunks(stream))

    assert client == sse(chat_chunk("write to "), chat_chunk(EMAIL_TOKEN))
    assert recorded == client


def test_model_value_stays_tokenized(processor):
    stream = sse(
        chat_chunk("mail bob@exa"),
        chat_chunk("mple.test now"),
        chat_chunk(finish_reason="stop"),
    )

    client, recorded = run_stream(chat_rewriter(processor), [stream])

    assert client == sse(
        chat_chunk("mail "),
        chat_chunk(EMAIL_TOKEN + " "),
        chat_chunk("now", finish_reason="stop"),
    )
    assert recorded == client
    assert processor.counts == {"EMAIL_ADDRESS": 1}


def test_interleaved_choices_kept_apart(processor):
    stream = sse(
        chat_chunk("A " + ALICE_TOKEN[:3], index=0),
        chat_chunk("B " + ALICE_TOKEN[:6], index=1),
        chat_chunk(ALICE_TOKEN[3:] + " x", index=0),
        chat_chunk(ALICE_TOKEN[6:] + " y", index=1),
        chat_chunk(finish_reason="stop", index=1),
        chat_chunk(finish_reason="length", index=0),
        "[DONE]",
    )

    client, recorded = run_stream(chat_rewriter(processor), byte_chunks(stream))

    assert client == sse(
        chat_chunk("A ", index=0),
        chat_chunk("B ", index=1),
        chat_chunk("Alice Novak ", index=0),
        chat_chunk("Alice Novak ", index=1),
        chat_chunk("y", finish_reason="stop", index=1),
        chat_chunk("x", finish_reason="length", index=0),
        "[DONE]",
    )
    assert recorded == sse(
        chat_chunk("A ", index=0),
        chat_chunk("B ", index=1),
        chat_chunk(ALICE_TOKEN + " ", index=0),
        chat_chunk(ALICE_TOKEN + " ", index=1),
        chat_chunk("y", finish_reason="stop", index=1),
        chat_chunk("x", finish_reason="length", index=0),
        "[DONE]",
    )


def test_usage_and_empty_choices_unchanged(processor):
    usage = '{"id":"chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 5}}'
    no_choices = '{"id":"chatcmpl-1","object":"chat.completion.chunk"}'
    stream = sse(chat_chunk("ok "), usage, no_choices, "[DONE]")

    client, recorded = run_stream(chat_rewriter(processor), byte_chunks(stream))

    assert client == stream
    assert recorded == stream


def test_comments_and_fields_pass(processor):
    stream = (
        b": ping\n\n"
        b"retry: 3000\n\n"
        b"event: chunk\nid: 7\ndata: "
        + chat_chunk("Hi " + ALICE_TOKEN + " ").encode()
        + b"\n\n"
    )

    client, recorded = run_stream(chat_rewriter(processor), byte_chunks(stream))

    assert client == (
        b": ping\n\nretry: 3000\n\n"
        b"event: chunk\nid: 7\ndata: "
        + chat_chunk("Hi Alice Novak ").encode()
        + b"\n\n"
    )
    assert recorded == stream


def test_multiline_data_joined(processor):
    first_line = '{"choices":[{"index":0,'
    second_line = '"delta":{"content":"' + ALICE_TOKEN + ' "}}]}'
    stream = f"data: {first_line}\ndata: {second_line}\n\n".encode()

    client, _ = run_stream(chat_rewriter(processor), [stream])

    assert client == sse('{"choices":[{"index":0,"delta":{"content":"Alice Novak "}}]}')


def test_multiline_data_unchanged_kept(processor):
    stream = b'data: {"choices":[{"index":0,\ndata: "delta":{"content":"ok "}}]}\n\n'

    client, _ = run_stream(chat_rewriter(processor), [stream])

    assert client == stream


def test_error_event_message_processed(processor):
    error = compact({"error": {"message": "no mailbox bob@example.test", "code": 500}})

    client, recorded = run_stream(chat_rewriter(processor), [sse(error)])

    expected = compact({"error": {"message": f"no mailbox {EMAIL_TOKEN}", "code": 500}})
    assert client == sse(expected)
    assert recorded == sse(expected)


def test_non_json_data_processed_as_text(processor):
    stream = b"data: call bob@example.test\n\n"

    client, recorded = run_stream(chat_rewriter(processor), byte_chunks(stream))

    assert client == f"data: call {EMAIL_TOKEN}\n\n".encode()
    assert recorded == client


def test_logprobs_removed(processor):
    chunk = compact(
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": "bob "},
                    "logprobs": {"content": [{"token": "bob", "logprob": -0.1}]},
                    "finish_reason": None,
                }
            ]
        }
    )

    client, _ = run_stream(chat_rewriter(processor), [sse(chunk)])

    expected = compact(
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": "bob "},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ]
        }
    )
    assert client == sse(expected)


def test_split_utf8_sequences(processor):
    stream = sse(chat_chunk("Grüße, 日本 "), chat_chunk(finish_reason="stop"))

    client, _ = run_stream(chat_rewriter(processor), byte_chunks(stream))

    assert client == stream


def test_unchanged_event_bytes_identical(processor):
    spaced = '{"choices": [{"index": 0, "delta": {"role": "assistant"}}]}'

    client, recorded = run_stream(chat_rewriter(processor), [sse(spaced)])

    assert client == sse(spaced)
    assert recorded == sse(spaced)


def tool_delta(index: int, arguments: str, **fields: object) -> dict[str, object]:
    return {"index": index, **fields, "function": {"arguments": arguments}}


def test_tool_arguments_restored_per_tool_index(processor):
    stream = sse(
        chat_chunk(tool_calls=[tool_delta(0, "", id="call_a", type="function")]),
        chat_chunk(tool_calls=[tool_delta(1, "", id="call_b", type="function")]),
        chat_chunk(tool_calls=[tool_delta(0, '{"to": "' + ALICE_TOKEN[:4])]),
        chat_chunk(tool_calls=[tool_delta(1, '{"cc": "' + ALICE_TOKEN[:8])]),
        chat_chunk(tool_calls=[tool_delta(0, ALICE_TOKEN[4:] + '"}')]),
        chat_chunk(tool_calls=[tool_delta(1, ALICE_TOKEN[8:] + '"}')]),
        chat_chunk(finish_reason="tool_calls"),
        "[DONE]",
    )

    client, recorded = run_stream(chat_rewriter(processor), byte_chunks(stream))

    def arguments(stream_bytes: bytes, tool_index: int) -> str:
        import json

        joined = ""
        for event in stream_bytes.decode().split("\n\n"):
            if not event.startswith("data: {"):
                continue
            for choice in json.loads(event[6:])["choices"]:
                for call in choice["delta"].get("tool_calls", []):
                    if call["index"] == tool_index:
                        joined += call["function"]["arguments"]
        return joined

    assert arguments(client, 0) == '{"to": "Alice Novak"}'
    assert arguments(client, 1) == '{"cc": "Alice Novak"}'
    assert arguments(recorded, 0) == '{"to": "' + ALICE_TOKEN + '"}'
    assert arguments(recorded, 1) == '{"cc": "' + ALICE_TOKEN + '"}'


def test_tool_arguments_flushed_at_finish_reason(processor):
    stream = sse(
        chat_chunk(tool_calls=[tool_delta(0, '{"to": "' + ALICE_TOKEN)]),
        chat_chunk(finish_reason="tool_calls"),
    )

    client, recorded = run_stream(chat_rewriter(processor), [stream])

    assert client == sse(
        chat_chunk(tool_calls=[tool_delta(0, '{"to": ')]),
        chat_chunk(
            tool_calls=[tool_delta(0, '"Alice Novak')], finish_reason="tool_calls"
        ),
    )
    assert recorded == sse(
        chat_chunk(tool_calls=[tool_delta(0, '{"to": ')]),
        chat_chunk(
            tool_calls=[tool_delta(0, '"' + ALICE_TOKEN)], finish_reason="tool_calls"
        ),
    )


def test_tool_arguments_restored_value_escaped(processor):
    processor.entitled[ALICE_TOKEN] = 'Alice "Al" Novak'
    stream = sse(
        chat_chunk(tool_calls=[tool_delta(0, '{"to": "' + ALICE_TOKEN + '"}')]),
        chat_chunk(finish_reason="tool_calls"),
    )

    client, _ = run_stream(chat_rewriter(processor), [stream])

    assert client == sse(
        chat_chunk(tool_calls=[tool_delta(0, '{"to": ')]),
        chat_chunk(
            tool_calls=[tool_delta(0, '"Alice \\"Al\\" Novak"}')],
            finish_reason="tool_calls",
        ),
    )


def completion_chunk(text: str, finish_reason: str | None = None) -> str:
    return compact(
        {
            "id": "cmpl-1",
            "object": "text_completion",
            "choices": [{"index": 0, "text": text, "finish_reason": finish_reason}],
        }
    )


def test_completions_split_token_restored(processor):
    stream = sse(
        completion_chunk("Dear " + ALICE_TOKEN[:2]),
        completion_chunk(ALICE_TOKEN[2:]),
        completion_chunk("", finish_reason="stop"),
        "[DONE]",
    )
    rewriter = rewriter_for(ApiShape.OPENAI_COMPLETIONS, "text/event-stream", processor)

    client, recorded = run_stream(rewriter, byte_chunks(stream))

    assert client == sse(
        completion_chunk("Dear "),
        completion_chunk(""),
        completion_chunk("Alice Novak", finish_reason="stop"),
        "[DONE]",
    )
    assert recorded == sse(
        completion_chunk("Dear "),
        completion_chunk(""),
        completion_chunk(ALICE_TOKEN, finish_reason="stop"),
        "[DONE]",
    )


def test_completions_tail_flushed_before_done(processor):
    stream = sse(completion_chunk("Dear " + ALICE_TOKEN), "[DONE]")
    rewriter = rewriter_for(ApiShape.OPENAI_COMPLETIONS, "text/event-stream", processor)

    client, _ = run_stream(rewriter, [stream])

    flushed = compact(
        {
            "id": "cmpl-1",
            "object": "text_completion",
            "choices": [
                {
                    "index": 0,
                    "text": "Alice Novak",
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
        }
    )
    assert client == sse(completion_chunk("Dear "), flushed, "[DONE]")


def test_unchanged_content_bytes_identical(processor):
    spaced = '{"choices": [{"index": 0, "delta": {"content": "plain words "}}]}'

    client, recorded = run_stream(chat_rewriter(processor), byte_chunks(sse(spaced)))

    assert client == sse(spaced)
    assert recorded == sse(spaced)


def test_min_release_same_text(processor):
    rewriter = rewriter_for(
        ApiShape.OPENAI_CHAT, "text/event-stream", processor, min_release_chars=32
    )

    client, recorded = run_stream(rewriter, byte_chunks(SPLIT_TOKEN_STREAM))

    assert client == sse(
        chat_chunk(""),
        chat_chunk("Hi "),
        chat_chunk(""),
        chat_chunk("Alice Novak, done", finish_reason="stop"),
        "[DONE]",
    )
    assert recorded == sse(
        chat_chunk(""),
        chat_chunk("Hi "),
        chat_chunk(""),
        chat_chunk(ALICE_TOKEN + ", done", finish_reason="stop"),
        "[DONE]",
    )
